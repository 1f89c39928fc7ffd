"""SMACT's validity check (charge neutrality and electronegativity order) with a guard on its cost.

SMACT tries every combination of the elements' oxidation states (about 1 us each) and stops early only
on success, so junk formulas with many elements would take seconds to minutes each; those beyond
``SMACT_MAX_COMBINATIONS`` are counted invalid without a search (``smact_valid_guarded``).

>>> smact_valid(["NaCl", "NaCl2", ""]).tolist()
[True, False, False]
>>> smact_valid_guarded(["NaCl", "NaCl2"])
[True, False]
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence

import numpy as np
from pymatgen.core import Element
from smact import metals as smact_metals
from smact.screening import smact_validity

from stoichgen.chem.oxidation import oxidation_states
from stoichgen.errors import FormulaError

__all__ = ["SMACT_MAX_COMBINATIONS", "smact_affordable", "smact_states", "smact_valid", "smact_valid_guarded"]

SMACT_MAX_COMBINATIONS = 20_000  # about 25 ms per formula at most
SYMBOL = re.compile(r"[A-Z][a-z]*")
SMACT_METALS = frozenset(smact_metals)
_ALL_SYMBOLS = tuple(e.symbol for e in Element)


@functools.lru_cache(maxsize=1 << 16)
def _smact_valid_one(formula: str, use_pauling_test: bool, include_alloys: bool) -> bool:
    if not formula.strip():
        return False
    try:
        return bool(smact_validity(formula, use_pauling_test=use_pauling_test, include_alloys=include_alloys))
    except (ValueError, KeyError, TypeError) as err:
        raise FormulaError(f"SMACT cannot check formula {formula!r}: {err}") from err


def smact_valid(
    formulas: Sequence[str], *, use_pauling_test: bool = True, include_alloys: bool = True
) -> np.ndarray:
    """SMACT's charge-neutrality and electronegativity screen (``smact_validity``) per formula; cached.

    Empty formulas (nothing above threshold) are invalid. Defaults are SMACT's: all-metal compositions
    count as valid alloys. No cost guard: see ``smact_valid_guarded``.
    """
    return np.array(
        [_smact_valid_one(str(f), use_pauling_test, include_alloys) for f in formulas], dtype=bool
    )


@functools.cache
def _smact_table() -> dict[str, tuple[int, ...]]:
    """The oxidation states SMACT's validity search tries per element (its default ICSD24 set)."""
    try:  # private in smact 4.0.2 (pinned); the pymatgen ICSD table is the fallback
        from smact.screening import ICSD24FilterConfig, _get_icsd24_oxidation_dict

        config = ICSD24FilterConfig()
        table = _get_icsd24_oxidation_dict(
            include_zero=config.include_zero, consensus=config.consensus, commonality=config.commonality
        )
        return {symbol: tuple(int(s) for s in states) for symbol, states in table.items()}
    except (ImportError, AttributeError, TypeError):
        return {symbol: oxidation_states(symbol, "icsd") for symbol in _ALL_SYMBOLS}


@functools.cache
def smact_states(symbol: str) -> tuple[int, ...]:
    """Non-zero oxidation states SMACT's validity check tries for an element, sorted.

    >>> smact_states("O")
    (-2, -1, 2)
    """
    return tuple(sorted(s for s in _smact_table().get(symbol, ()) if s != 0))


def smact_affordable(formula: str) -> bool:
    """Whether SMACT's search over ``formula`` tries at most ``SMACT_MAX_COMBINATIONS`` combinations;
    all-metal formulas (SMACT's alloys) and single elements are decided without a search."""
    symbols = set(SYMBOL.findall(formula))
    if len(symbols) <= 1 or symbols <= SMACT_METALS:
        return True
    table = _smact_table()
    return math.prod(len(table.get(s, ())) for s in symbols) <= SMACT_MAX_COMBINATIONS


def smact_valid_guarded(formulas: Sequence[str]) -> list[bool]:
    """SMACT validity per formula; formulas SMACT cannot check, or too costly to check, count as invalid."""
    out = []
    for formula in formulas:
        try:
            out.append(smact_affordable(formula) and bool(smact_valid([formula])[0]))
        except FormulaError:
            out.append(False)
    return out
