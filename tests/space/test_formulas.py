"""The candidate space: formulas by construction against a brute-force enumeration, the SMACT rule against
SMACT itself, the one formula writer against pymatgen."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from pymatgen.core import Composition
from smact.screening import smact_validity

from stoichgen.chem.oxidation import oxidation_states
from stoichgen.errors import InputError
from stoichgen.space import formulas as formulas_module
from stoichgen.space.formulas import NEUTRAL, SMACT, Rule, candidate_counts, formula_text, rule_accepts


def neutral_counts(elements, max_atoms, table="common"):
    return candidate_counts(tuple(elements), max_atoms, Rule(table))


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
    assert [formula_text(("Na", "Cl"), c) for c in neutral_counts(("Na", "Cl"), 6)] == ["NaCl"]
    with pytest.raises(InputError, match="max_atoms"):
        neutral_counts(("Na", "Cl"), 1000)


SYSTEMS = [("Li", "P", "O"), ("La", "Ho", "F"), ("Cu", "Zn"), ("Fe", "O"), ("Xe", "F")]


def reduced_vectors(k: int, max_atoms: int) -> list[tuple[int, ...]]:
    every = itertools.product(range(1, max_atoms), repeat=k)
    return [c for c in every if sum(c) <= max_atoms and math.gcd(*c) == 1]


@pytest.mark.parametrize("elements", SYSTEMS)
def test_smact_rule_is_smact_validity(elements):
    """Every reduced count vector up to 12 atoms: accepted by the SMACT rule exactly when SMACT accepts it,
    and the enumeration holds exactly the accepted ones."""
    every = reduced_vectors(len(elements), 12)
    text = [formula_text(elements, c) for c in every]
    expected = {c for c, f in zip(every, text, strict=True) if smact_validity(f)}
    accepted = rule_accepts(elements, np.array(every), SMACT)
    assert {c for c, ok in zip(every, accepted, strict=True) if ok} == expected
    assert set(map(tuple, candidate_counts(elements, 12, SMACT).tolist())) == expected


def test_rule_accepts_is_membership_of_the_enumeration():
    elements = ("Li", "Mn", "O")
    counts = np.array(reduced_vectors(3, 10))
    listed = set(map(tuple, candidate_counts(elements, 10, NEUTRAL).tolist()))
    assert rule_accepts(elements, counts, NEUTRAL).tolist() == [tuple(c) in listed for c in counts.tolist()]


def test_formula_text_is_pymatgens_order():
    """Electronegativity order, as pymatgen's ``Composition.formula`` writes it (without its spaces and
    ones; pymatgen's ``reduced_formula`` also groups polyanions, ``LiFe3(PO)2``, which we do not)."""
    for elements in [("O", "Fe", "Li", "P"), ("Mn", "Li", "O"), ("Cl", "Na")]:
        for counts in candidate_counts(tuple(elements), 10, NEUTRAL)[:20]:
            text = formula_text(elements, counts)
            spaced = Composition(text).formula.split()
            assert text == "".join(part[:-1] if part.endswith("1") and not part[-2].isdigit() else part
                                   for part in spaced)  # fmt: skip
            assert Composition(text) == Composition(dict(zip(elements, counts.tolist(), strict=True)))


def test_unknown_table_is_named():
    with pytest.raises(InputError, match="oxidation table 'magic'"):
        Rule("magic")


@pytest.mark.parametrize(("rule", "max_atoms"), [(SMACT, 14), (NEUTRAL, 30), (Rule("all"), 12)])
def test_both_ways_of_building_the_space_agree(rule, max_atoms):
    """Solving for the last count and checking every count vector give the same formulas."""
    for elements in [("Li", "Fe", "P", "O"), ("Mn", "O"), ("Na", "S", "Cl")]:
        choices = formulas_module.state_choices(elements, rule)
        k = len(elements)
        solved = formulas_module._solved(choices, k, max_atoms)
        checked = formulas_module._checked(choices, k, max_atoms)
        assert set(map(tuple, solved.tolist())) == set(map(tuple, checked.tolist())), elements


def test_writing_a_noble_gas_formula_says_nothing_on_stderr(recwarn):
    """Issue 25, chemist's point: "No Pauling electronegativity for Og" leaked to stderr; not the user's
    business (NaN sorts the element last, as intended)."""
    from stoichgen.space import formulas

    formulas._pauling_x.cache_clear()
    assert formulas.formula_text(("Og", "F"), (1, 2)) == "F2Og"  # no electronegativity: last
    formulas.formula_text(("He", "Ne", "F"), (1, 1, 4))
    assert not [w for w in recwarn.list if "Pauling" in str(w.message)]
