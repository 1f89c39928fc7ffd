"""Neutral formulas by construction against a brute-force enumeration of every count vector."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from stoichgen.chem.enumeration import neutral_counts, neutral_formulas
from stoichgen.chem.oxidation import oxidation_states
from stoichgen.errors import InputError


def brute_force(elements: tuple[str, ...], max_atoms: int, table: str) -> set[tuple[int, ...]]:
    """Every count vector, kept when reduced and neutral for some choice of one state per element."""
    states = [[s for s in oxidation_states(e, table) if s != 0] for e in elements]
    found = set()
    for counts in itertools.product(range(1, max_atoms + 1), repeat=len(elements)):
        if sum(counts) > max_atoms or math.gcd(*counts) != 1:
            continue
        if any(
            sum(n * q for n, q in zip(counts, choice, strict=True)) == 0
            for choice in itertools.product(*states)
        ):
            found.add(counts)
    return found


@pytest.mark.parametrize(("elements", "max_atoms", "table"), [
    (("Li", "Mn", "Fe", "O"), 12, "common"),
    (("Li", "Fe", "O"), 10, "all"),
    (("Na", "Cl", "O", "S"), 9, "icsd"),
])  # fmt: skip
def test_every_subset_matches_brute_force(elements, max_atoms, table):
    total = 0
    for k in range(1, len(elements) + 1):
        for subset in itertools.combinations(elements, k):
            counts = neutral_counts(subset, max_atoms, table)
            assert set(map(tuple, counts.tolist())) == brute_force(subset, max_atoms, table), subset
            assert len(counts) == len({tuple(c) for c in counts.tolist()})  # no duplicates
            total += len(counts)
    assert total > 0


def test_li_mn_fe_o_count_and_order():
    """Li-Mn-Fe-O, at most 12 atoms, common states: 91 formulas over its 11 systems of 2-4 elements."""
    systems = [s for k in (2, 3, 4) for s in itertools.combinations(("Li", "Mn", "Fe", "O"), k)]
    assert sum(len(neutral_counts(s, 12)) for s in systems) == 91
    counts = neutral_counts(("Li", "Mn", "O"), 12)
    atoms = counts.sum(axis=1)
    assert (np.diff(atoms) >= 0).all()  # fewest atoms first
    assert not counts.flags.writeable


def test_what_cannot_be_neutral_is_empty():
    assert len(neutral_counts(("Fe",), 10)) == 0  # one element: no state 0 in the tables
    assert len(neutral_counts(("Na", "Ne"), 10)) == 0  # a noble gas has no states
    assert len(neutral_counts(("Na", "K"), 10)) == 0  # two cations
    assert list(neutral_formulas(("Na", "Cl"), 6)) == ["NaCl"]
    with pytest.raises(InputError, match="max_atoms"):
        neutral_counts(("Na", "Cl"), 1000)
