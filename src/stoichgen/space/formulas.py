"""The candidate space: every reduced integer formula over an element set that a rule accepts, by
construction, and the one way formulas are written.

A ``Rule`` names the oxidation table (``"smact"``: SMACT's ICSD-24 states, what ``smact_validity``
tries; ``"common"``, ``"all"``, ``"icsd"``: pymatgen's tables), whether cations must be less
electronegative than anions (Pauling, as SMACT checks), and whether a set of metals only counts as an
alloy (every ratio accepted, as SMACT does). For each allowed choice of one state per element the counts
of all elements but the last are enumerated and the last one solved for, kept when it is a whole number
>= 1 within the atom budget. For small formula units or wide tables, checking every count vector is
faster, and is done there instead (both ways are tested equal).

>>> candidate_counts(("Li", "O"), 6, NEUTRAL).tolist()
[[2, 1]]
>>> [formula_text(("Fe", "O"), c) for c in candidate_counts(("Fe", "O"), 10, NEUTRAL)]
['FeO', 'Fe2O3']
>>> len(candidate_counts(("Li", "Mn", "Fe", "O"), 12, NEUTRAL))
32
>>> candidate_counts(("Na", "Cl"), 4, SMACT).tolist()
[[1, 1]]
>>> len(candidate_counts(("Cu", "Zn"), 5, SMACT))  # an alloy: every reduced ratio
9
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pymatgen.core import Element

from stoichgen.chem.balance import DEFAULT_MAX_ATOMS, count_vectors
from stoichgen.chem.oxidation import OXIDATION_TABLES, assignments, oxidation_states
from stoichgen.chem.validity import SMACT_METALS, smact_states
from stoichgen.errors import InputError

__all__ = ["DEFAULT_MAX_ATOMS", "MAX_ENUMERATION_ATOMS", "NEUTRAL", "SMACT", "Rule", "candidate_counts",
           "formula_text", "fraction_keys", "rule_accepts", "state_choices"]  # fmt: skip

MAX_ENUMERATION_ATOMS = 60
_BLOCK = 256  # assignments solved at once: bounded memory for large tables and formula units


@dataclass(frozen=True)
class Rule:
    """Which formulas are candidates: neutral for one state per element of ``table``, with cations less
    electronegative than anions when ``pauling``, or made of metals only when ``alloys``."""

    table: str = "common"
    pauling: bool = False
    alloys: bool = False

    def __post_init__(self) -> None:
        if self.table not in ("smact", *OXIDATION_TABLES):
            tables = ", ".join(("smact", *OXIDATION_TABLES))
            raise InputError(f"unknown oxidation table {self.table!r}; use {tables}", field="oxidation")


SMACT = Rule("smact", pauling=True, alloys=True)  # exactly SMACT's smact_validity (tested against it)
NEUTRAL = Rule("common")  # neutral for one of pymatgen's common states per element


@functools.cache
def _states(symbol: str, table: str) -> tuple[int, ...]:
    states = smact_states(symbol) if table == "smact" else oxidation_states(symbol, table)  # type: ignore[arg-type]
    return tuple(s for s in states if s != 0)


@functools.cache
def _electronegativity(symbol: str) -> float | None:
    import smact

    return smact.Element(symbol).pauling_eneg


@functools.lru_cache(maxsize=4096)  # bounded: its keys vary with every request
def state_choices(elements: tuple[str, ...], rule: Rule) -> np.ndarray:
    """Every choice of one state per element that the rule allows, with cations and anions both present.
    Shape (C, k), int64, read-only.

    >>> state_choices(("Fe", "O"), NEUTRAL).tolist()
    [[2, -2], [3, -2]]
    """
    states = tuple(_states(e, rule.table) for e in elements)
    if not elements or not all(states):
        table = np.zeros((0, len(elements)), dtype=np.int64)
    else:
        table = assignments(states).astype(np.int64)  # (C, k)
        table = table[(table > 0).any(axis=1) & (table < 0).any(axis=1)]
        if rule.pauling:
            chi = [_electronegativity(e) for e in elements]
            if any(c is None for c in chi):
                table = table[:0]
            else:
                chi_row = np.asarray(chi, dtype=float)
                cation_max = np.where(table > 0, chi_row, -np.inf).max(axis=1)
                anion_min = np.where(table < 0, chi_row, np.inf).min(axis=1)
                table = table[cation_max < anion_min]
    table = np.ascontiguousarray(table)
    table.flags.writeable = False
    return table


@functools.cache
def _pymatgen_metal(symbol: str) -> bool:
    return bool(Element(symbol).is_metal)


def _is_alloy(elements: Sequence[str], rule: Rule) -> bool:
    """Metals only, accepted without oxidation states: SMACT's metals for SMACT's own rule, pymatgen's
    (no metalloids) for pymatgen's tables, so that a "common" candidate is neutral or metals only by
    pymatgen's own definitions."""
    if not rule.alloys or len(elements) < 2:
        return False
    if rule.table == "smact":
        return set(elements) <= SMACT_METALS
    return all(_pymatgen_metal(e) for e in elements)


@functools.lru_cache(maxsize=4096)  # bounded: its keys vary with every request
def candidate_counts(elements: tuple[str, ...], max_atoms: int, rule: Rule = NEUTRAL) -> np.ndarray:
    """Reduced count vectors (M, k) over ``elements`` (each count >= 1, at most ``max_atoms`` atoms) that
    the rule accepts, fewest atoms first, then by counts. Read-only. One element alone is never a
    candidate, nor a set with an element that has no states in the table (a noble gas)."""
    k = len(elements)
    if not 1 <= max_atoms <= MAX_ENUMERATION_ATOMS:
        raise InputError(f"max_atoms must be between 1 and {MAX_ENUMERATION_ATOMS}, got {max_atoms}",
                         field="max_atoms")  # fmt: skip
    if k < 2 or max_atoms < k:
        counts = np.zeros((0, k), dtype=np.int64)
    elif _is_alloy(elements, rule):
        counts = count_vectors(k, max_atoms, max_atoms)
    else:
        choices = state_choices(tuple(elements), rule)  # (C, k)
        how = _solved if _solve_pays(choices, k, max_atoms) else _checked
        counts = how(choices, k, max_atoms)
    counts = counts[np.gcd.reduce(counts, axis=1) == 1] if len(counts) else counts
    counts = np.ascontiguousarray(counts[np.lexsort((*counts.T[::-1], counts.sum(axis=1)))], dtype=np.int64)
    counts.flags.writeable = False
    return counts


def _solve_pays(choices: np.ndarray, k: int, max_atoms: int) -> bool:
    """Whether solving for the last count beats checking every count vector: when the vectors are many
    times more than those of one element fewer (large formula units), and few state choices repeat the
    same formulas (SMACT's wide tables make many duplicates)."""
    every = math.comb(max_atoms, k)  # count vectors of k elements with at most max_atoms atoms
    fewer = math.comb(max_atoms - 1, k - 1)
    return every >= 8 * fewer and len(choices) <= 64


def _checked(choices: np.ndarray, k: int, max_atoms: int) -> np.ndarray:
    """Every count vector, kept when some state choice makes it neutral (float products: BLAS, exact for
    these small integers)."""
    counts = count_vectors(k, max_atoms, max_atoms)  # (R, k)
    as_float = counts.astype(np.float64)
    keep = np.zeros(len(counts), dtype=bool)
    for start in range(0, len(choices), _BLOCK):
        block = choices[start : start + _BLOCK].astype(np.float64)  # (B, k)
        keep |= (as_float @ block.T == 0).any(axis=1)  # (R, B) -> (R,)
    return counts[keep]


def _solved(choices: np.ndarray, k: int, max_atoms: int) -> np.ndarray:
    """For each state choice, the counts of all elements but the last, and the last solved for."""
    others = count_vectors(k - 1, max_atoms - 1, max_atoms - 1)  # (R, k-1): every count but the last
    atoms = others.sum(axis=1)[:, None]  # (R, 1)
    found = [np.zeros((0, k), dtype=np.int64)]
    for start in range(0, len(choices), _BLOCK):
        q = choices[start : start + _BLOCK]  # (B, k)
        charge = others @ q[:, :-1].T  # (R, B)
        last, remainder = np.divmod(-charge, q[:, -1])  # (R, B)
        rows, cols = np.nonzero((remainder == 0) & (last >= 1) & (atoms + last <= max_atoms))
        found.append(np.hstack([others[rows], last[rows, cols][:, None]]))
    return np.unique(np.vstack(found), axis=0)


def rule_accepts(elements: tuple[str, ...], counts: np.ndarray, rule: Rule) -> np.ndarray:
    """Whether the rule accepts each row of integer counts (M, k) over ``elements``. (M,) bool.

    >>> rule_accepts(("Fe", "O"), np.array([[1, 1], [2, 3], [3, 4], [1, 2]]), NEUTRAL).tolist()
    [True, True, False, False]
    """
    counts = np.asarray(counts, dtype=np.int64)
    if len(elements) < 2:
        return np.zeros(len(counts), dtype=bool)
    if _is_alloy(elements, rule):
        return np.ones(len(counts), dtype=bool)
    choices = state_choices(tuple(elements), rule)  # (C, k)
    out = np.zeros(len(counts), dtype=bool)
    for start in range(0, len(choices), _BLOCK):
        out |= (counts @ choices[start : start + _BLOCK].T == 0).any(axis=1)  # (M, B) -> (M,)
    return out


@functools.cache
def _pauling_x(symbol: str) -> float:
    with warnings.catch_warnings():  # pymatgen warns for noble gases; NaN sorts them last, as intended
        warnings.filterwarnings("ignore", message="No Pauling electronegativity")
        x = Element(symbol).X
    return math.inf if math.isnan(x) else x


def formula_text(elements: Sequence[str], counts: Sequence[int]) -> str:
    """A reduced formula with elements in order of electronegativity (pymatgen's ``Composition.formula``
    order, without its special names such as ``LiO2`` for ``LiO``): the one formula writer.

    >>> formula_text(("O", "Fe"), (3, 2))
    'Fe2O3'
    """
    order = sorted(range(len(elements)), key=lambda i: (_pauling_x(elements[i]), elements[i]))
    return "".join(f"{elements[i]}{'' if counts[i] == 1 else int(counts[i])}" for i in order)


def fraction_keys(x_b: np.ndarray) -> list[bytes]:
    """A hashable key per row of fractions (N, V): equal keys are equal reduced formulas."""
    rounded = np.round(np.asarray(x_b, dtype=float), 9)
    return [row.tobytes() for row in rounded]
