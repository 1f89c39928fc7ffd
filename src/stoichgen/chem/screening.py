"""Deprecated name of ``stoichgen.chem.validity`` (SMACT's validity check); kept for old imports.

"Screen" now means ``stoichgen screen`` alone. ``screen_formulas`` is ``validity.smact_valid_guarded``.
"""

from __future__ import annotations

import warnings

from stoichgen.chem import validity

_RENAMED = {"screen_formulas": "smact_valid_guarded"}


def __getattr__(name: str) -> object:
    new = _RENAMED.get(name, name)
    if not hasattr(validity, new):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(f"stoichgen.chem.screening.{name} is deprecated; use stoichgen.chem.validity.{new}",
                  DeprecationWarning, stacklevel=2)  # fmt: skip
    return getattr(validity, new)
