"""Deprecated name of ``stoichgen.discover.hull_table`` (``stoichgen hull`` and its pictures); kept for
old imports."""

from __future__ import annotations

import warnings

from stoichgen.discover import hull_table


def __getattr__(name: str) -> object:
    if not hasattr(hull_table, name):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    message = f"stoichgen.discover.stability.{name} is deprecated; use stoichgen.discover.hull_table.{name}"
    warnings.warn(message, DeprecationWarning, stacklevel=2)
    return getattr(hull_table, name)
