"""Every charge-neutral reduced formula over a set of elements, by construction.

A formula is neutral when one oxidation state per element (from a pymatgen table, as the paper's
valence; or SMACT's) makes its charge exactly zero. For each choice of states ``q`` the counts of all
elements but one are enumerated and the last one solved for, ``n_last = -sum(n_i q_i) / q_last``, kept
when it is a whole number >= 1 within the atom budget: the neutral formulas are built, not filtered out
of every count vector. The union over state choices, reduced (gcd 1), is the answer.

>>> neutral_counts(("Li", "O"), 6).tolist()
[[2, 1]]
>>> [formula for formula in neutral_formulas(("Fe", "O"), 10)]
['FeO', 'Fe2O3']
>>> len(neutral_counts(("Li", "Mn", "Fe", "O"), 12))
32
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence

import numpy as np

from stoichgen.chem.balance import count_vectors
from stoichgen.chem.oxidation import OxidationTable, assignments, oxidation_states
from stoichgen.errors import InputError

__all__ = ["MAX_ENUMERATION_ATOMS", "neutral_counts", "neutral_formulas", "formula_of"]

MAX_ENUMERATION_ATOMS = 60


@functools.cache
def _states(elements: tuple[str, ...], table: OxidationTable) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(s for s in oxidation_states(e, table) if s != 0) for e in elements)


@functools.cache
def neutral_counts(elements: tuple[str, ...], max_atoms: int, table: OxidationTable = "common") -> np.ndarray:
    """Reduced count vectors (M, k) over ``elements`` (each count >= 1, at most ``max_atoms`` atoms) that
    are neutral for one state per element, fewest atoms first, then by counts. Read-only.

    One element alone is never neutral (no table holds state 0), nor is a set with an element that has
    no states (a noble gas).
    """
    k = len(elements)
    if not 1 <= max_atoms <= MAX_ENUMERATION_ATOMS:
        raise InputError(f"max_atoms must be between 1 and {MAX_ENUMERATION_ATOMS}, got {max_atoms}")
    states = _states(tuple(elements), table)
    empty = np.zeros((0, k), dtype=np.int64)
    if k < 2 or max_atoms < k or not all(states):
        return _frozen(empty)
    others = count_vectors(k - 1, max_atoms - 1, max_atoms - 1)  # (R, k-1): every count but the last
    atoms = others.sum(axis=1)
    found = [empty]
    for q in assignments(states).astype(np.int64):  # (k,) one state per element
        if (q > 0).all() or (q < 0).all():
            continue  # all cations or all anions: nothing to balance
        charge = others @ q[:-1]  # (R,)
        last, remainder = np.divmod(-charge, q[-1])
        ok = (remainder == 0) & (last >= 1) & (atoms + last <= max_atoms)
        found.append(np.hstack([others[ok], last[ok, None]]))
    counts = np.unique(np.vstack(found), axis=0)
    counts = counts[np.gcd.reduce(counts, axis=1) == 1]
    return _frozen(counts[np.lexsort((*counts.T[::-1], counts.sum(axis=1)))])


def _frozen(counts: np.ndarray) -> np.ndarray:
    counts = np.ascontiguousarray(counts, dtype=np.int64)
    counts.flags.writeable = False
    return counts


def formula_of(elements: Sequence[str], counts: Sequence[int]) -> str:
    """``Fe2O3`` from ("Fe", "O") and (2, 3), elements in the order given."""
    return "".join(f"{e}{'' if int(n) == 1 else int(n)}" for e, n in zip(elements, counts, strict=True))


def neutral_formulas(
    elements: tuple[str, ...], max_atoms: int, table: OxidationTable = "common"
) -> Iterator[str]:
    """The neutral formulas of ``neutral_counts`` as text."""
    for counts in neutral_counts(tuple(elements), max_atoms, table):
        yield formula_of(elements, counts)
