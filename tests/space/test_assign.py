"""Each candidate's oxidation states: neutral by construction, checked by SMACT and pymatgen themselves,
the likeliest by pymatgen's ICSD occurrences; the rare ranked down, not forbidden."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Composition, Species
from smact.screening import smact_validity

from stoichgen.space.assign import TABLES, assign, oxidation_text, rarity, state_probability
from stoichgen.space.formulas import candidate_counts, formula_text

SYSTEMS = [("Li", "Fe", "P", "O"), ("La", "Ho", "F"), ("Li", "Mn", "O"), ("Cu", "Zn"), ("Ba", "Ti", "O", "S")]


@pytest.mark.parametrize("table", list(TABLES))
@pytest.mark.parametrize("elements", SYSTEMS)
def test_every_assignment_is_neutral_by_pymatgens_and_smacts_own_checks(elements, table):
    counts = candidate_counts(elements, 14, TABLES[table])
    states, probability = assign(elements, counts, TABLES[table])
    assert len(counts) > 0
    for row, q, p in zip(counts.tolist(), states.tolist(), probability.tolist(), strict=True):
        if not any(q):  # an alloy: metals only, no assignment
            assert np.isnan(p) and all(Species(e).element.is_metal or table == "icsd" for e in elements)
            continue
        assert sum(n * s for n, s in zip(row, q, strict=True)) == 0  # the charges sum to zero
        species = {e: s for e, s in zip(elements, q, strict=True)}
        comp = Composition({Species(e, s): n for (e, s), n in zip(species.items(), row, strict=True)})
        assert abs(comp.charge) < 1e-9  # pymatgen's own charge of the decorated composition
        assert 0 < p <= 1
        if table == "icsd":
            assert smact_validity(formula_text(elements, row))  # SMACT's own verdict on the same space


def test_the_likeliest_assignment_is_chosen_and_the_rare_ranked_down():
    states, probability = assign(("Fe", "O"), np.array([[3, 4], [2, 3], [1, 1]]), TABLES["icsd"])
    assert [oxidation_text(("Fe", "O"), q) for q in states] == ["", "Fe3+ O2-", "Fe2+ O2-"]  # Fe3O4: mixed
    assert probability[1] > probability[2]  # Fe3+ is the more common ion
    _, (usual, rare) = assign(("Li", "P", "O"), np.array([[3, 1, 4], [4, 1, 3]]), TABLES["icsd"])
    assert usual == pytest.approx(
        state_probability("Li", 1) * state_probability("P", 5) * state_probability("O", -2)
    )
    assert rare < 0.01 < usual  # Li4PO3 needs P2+
    cost = rarity(np.array([usual, rare]), ("Li", "P", "O"), TABLES["icsd"])
    assert cost[1] - cost[0] > 1.5  # -log10: two orders of magnitude less likely


def test_the_common_table_is_plausible_by_construction():
    """Every candidate of 'common' is neutral for one of pymatgen's common states per element, or made
    of metals only (pymatgen's own Element.is_metal)."""
    for elements in SYSTEMS:
        for row in candidate_counts(elements, 12, TABLES["common"]).tolist():
            comp = Composition(dict(zip(elements, row, strict=True)))
            common = {e: list(Species(e).element.common_oxidation_states) for e in elements}
            guesses = comp.oxi_state_guesses(oxi_states_override=common)
            assert guesses or all(el.is_metal for el in comp), comp
