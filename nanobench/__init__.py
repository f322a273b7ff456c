from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("nanobench")
except PackageNotFoundError:  # running from a checkout that is not installed
    __version__ = "0.0.0+unknown"
