"""The one exception type the command line turns into a one-line message and exit code 2.

Anything raised as `InputError` is the user's to fix (a bad file, key, device or option);
its message must name the culprit and say what to do. Everything else is a bug and keeps
its traceback.
"""


class InputError(Exception):
    """Bad input: a file, key, value or device the user named. CLI exit code 2."""
