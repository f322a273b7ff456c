"""Numbers into words: the one home for how a time, a ratio, a size or a loss is written.

A leaf module: verdict sentences (analyze/verdicts.py) and tables (present/tables.py) both
format through it, so a sentence and the table beside it never disagree on a figure.
"""

from __future__ import annotations


def fmt(x, pattern: str = ".4f", none: str = "-") -> str:
    """x in format()'s `pattern` (".4f", ".2%"), `none` for None."""
    return none if x is None else format(x, pattern)


def fmt_bytes(n) -> str:
    if n is None:
        return "-"
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


def fmt_ratio(r) -> str:
    """2.35x below 10, 12.3x above; '-' for no ratio."""
    return "-" if r is None else (f"{r:.2f}x" if r < 10 else f"{r:.1f}x")


def fmt_time(s) -> str:
    """Seconds with three significant digits below 100 s, whole seconds above; '-' for none."""
    return "-" if s is None else (f"{s:.3g} s" if s < 100 else f"{s:.0f} s")


def fmt_duration(s) -> str:
    """fmt_time, but minutes and hours from 10 minutes on: explain's planned and projected
    runs last hours or days, which read badly as seconds."""
    if s is None or s < 600:
        return fmt_time(s)
    return f"{s / 60:.0f} min" if s < 3 * 3600 else f"{s / 3600:,.1f} h"


def fmt_ms(s) -> str:
    """Seconds shown as milliseconds, with as many decimals as the size warrants."""
    if s is None:
        return "-"
    ms = s * 1e3
    return (
        f"{ms:.3f}"
        if ms < 1
        else f"{ms:.2f}"
        if ms < 10
        else f"{ms:.1f}"
        if ms < 1000
        else f"{ms:,.0f}"
    )
