"""The hull against pymatgen's own PhaseDiagram, and the per-row reasons of `stoichgen hull`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
from pymatgen.core import Composition

from stoichgen.chem.hull import Hull
from stoichgen.data import load_mp_formation_energy
from stoichgen.discover.hull_table import annotate, hull_of


@pytest.fixture(scope="module")
def dataset():
    return load_mp_formation_energy()


@pytest.fixture(scope="module")
def hull(dataset):
    return hull_of(dataset)


def test_agrees_with_a_direct_phase_diagram(dataset, hull):
    """300 random bundled compounds with perturbed energies (some pushed below the hull): the same
    e_above_hull as pymatgen's PhaseDiagram built directly from the same reference, to 1e-6 eV/atom."""
    rng = np.random.default_rng(0)
    frame = dataset.frame
    rows = rng.choice(len(frame), 300, replace=False)
    below = 0
    for row in rows:
        comp, energy = frame["composition"].iloc[row], float(frame["property"].iloc[row])
        energy += float(rng.normal(0.0, 0.15))
        system = {el.symbol for el in comp}
        known = [
            PDEntry(c, y * c.num_atoms)
            for c, y in zip(frame["composition"], frame["property"], strict=True)
            if {el.symbol for el in c} <= system
        ]
        direct = PhaseDiagram(known + [PDEntry(Composition(s), 0.0) for s in system])
        _, expected = direct.get_decomp_and_e_above_hull(
            PDEntry(comp, energy * comp.num_atoms), allow_negative=True
        )
        result = hull.query(comp, energy)
        assert result.e_above_hull == pytest.approx(expected, abs=1e-6), comp.reduced_formula
        assert result.n_known == len(known)
        below += expected < 0
    assert below >= 20  # the test covers compounds below the known hull too


def test_elements_are_references_at_zero():
    hull = Hull.from_formulas(["Ba", "BaO"], [0.74, -2.8])  # the set's Ba row is another polymorph
    assert hull.query("Ba", 0.1).e_above_hull == pytest.approx(0.1)
    assert hull.query("Ba", 0.1).decomposition == "Ba"


def test_bad_rows_get_reasons_and_nothing_is_dropped(hull):
    table = pd.DataFrame(
        {
            "formula": ["Li2O", "Li2O", "Qq2", "", "NaN", "Li2O"],
            "energy": ["-2.0", "abc", "-1", "-1", "-0.1", "inf"],
        }
    )
    out = annotate(table, "formula", "energy", hull)
    assert len(out) == len(table) and list(out["formula"]) == list(table["formula"])
    reasons = out["hull_error"].tolist()
    assert reasons[0] == "" and np.isfinite(out["e_above_hull"][0])
    assert "not a number" in reasons[1]
    assert "unknown element symbol 'Qq'" in reasons[2]
    assert "empty formula" in reasons[3]
    assert reasons[4] == ""  # sodium nitride, not a missing value
    assert "not a finite number" in reasons[5]
    assert out["e_above_hull"][1:4].isna().all()


def test_elements_without_known_compounds_are_named():
    hull = Hull.from_formulas(["Li2O"], [-2.0])
    result = hull.query("Na2O", -1.0)
    assert np.isnan(result.e_above_hull) and result.reason == "no known compound holds Na"


def test_guided_rows_carry_their_place_on_the_hull():
    import stoichgen

    generator = stoichgen.Generator.default()
    df = generator.generate(-2.0, n=32, seed=0)
    assert df["e_above_hull"].notna().all() and (df["decomposition"] != "").all()
    np.testing.assert_allclose(df["e_above_hull_uncertainty"], df["uncertainty"])
    stable = generator.generate(-2.0, n=16, seed=0, max_e_hull=0.0)
    assert len(stable) == 16 and (stable["e_above_hull"] <= 0).all()


def test_vectorised_hull_equals_pymatgen_queries(hull):
    from stoichgen.space.formulas import SMACT, candidate_counts

    elements = ("Li", "Mn", "Fe", "O")
    counts = candidate_counts(elements, 16, SMACT)[:200]
    fractions = counts / counts.sum(axis=1, keepdims=True)
    energies = np.random.default_rng(1).uniform(-2.8, -0.8, len(counts))
    fast = hull.e_above_hull_many(elements, fractions, energies)
    slow = [hull.query(Composition(dict(zip(elements, c, strict=True))), e).e_above_hull
            for c, e in zip(counts.tolist(), energies, strict=True)]  # fmt: skip
    np.testing.assert_allclose(fast, slow, atol=1e-9)


def test_stability_objective_ranks_by_predicted_e_above_hull():
    import stoichgen
    from stoichgen.errors import GenerateError

    generator = stoichgen.Generator.default()
    df = generator.generate(None, n=24, objective="stability", elements="Li,Mn,Fe,P,O", seed=0)
    assert len(df) == 24 and df["target"].isna().all()
    assert df["score"].is_monotonic_increasing
    # the score is the selecting members' e_above_hull plus penalties; the rows report the other members'
    from stoichgen.chem.composition import formula_fractions

    chosen, _ = generator.surrogate.select_fractions_with_spread(
        formula_fractions(df["formula"].tolist(), generator.surrogate.vocabulary)
    )
    assert (df["score"] >= df["e_above_hull"] - df["predicted_property"] + chosen - 1e-6).all()
    assert df["e_above_hull"].iloc[:5].max() < 0.05
    with pytest.raises(GenerateError, match="objective applies to method 'guided' only"):
        generator.generate(-1.0, n=4, objective="stability", method="paper")
    with pytest.raises(GenerateError, match="unknown objective"):
        generator.generate(-1.0, n=4, objective="cheap")
