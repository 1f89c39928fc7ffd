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


def test_batched_queries_equal_pymatgen_row_by_row(dataset):
    """query_many (own qhull lower hulls) against query (pymatgen's PhaseDiagram) on 600 bundled formulas
    from many systems, energies moved so that some fall below the hull: the same e_above_hull,
    decomposition, n_known and reason on every row, bad rows included."""
    rng = np.random.default_rng(3)
    index = rng.choice(len(dataset.y), 600, replace=False)
    formulas = list(dataset.frame["reduced_formula"].to_numpy()[index]) + ["Xx2O", "XeF2", "Li2O", "Li", "O"]
    energies = list(dataset.y[index] + rng.normal(0.0, 0.15, len(index))) + [
        -1.0,
        -1.0,
        float("nan"),
        0.2,
        -0.1,
    ]
    reference, batched = hull_of(dataset), hull_of(dataset)  # fresh: neither sees the other's cache
    expected = [reference.query(f, e) for f, e in zip(formulas, energies, strict=True)]
    got = batched.query_many(formulas, energies)
    assert len({frozenset(Composition(f).chemical_system.split("-")) for f in formulas[:600]}) > 400
    assert sum(r.e_above_hull < 0 for r in expected[:600]) >= 40  # below the hull too
    for formula, want, have in zip(formulas, expected, got, strict=True):
        assert have.e_above_hull == pytest.approx(want.e_above_hull, abs=1e-9, nan_ok=True), formula
        assert (have.decomposition, have.n_known, have.reason) == (
            want.decomposition,
            want.n_known,
            want.reason,
        )


def test_batched_hull_keeps_pymatgen_conventions():
    """Polymorphs (the lowest counts), an element listed below zero (it becomes the corner, as pymatgen
    takes the lowest elemental entry), a compound above the elements' plane (never on the hull), and a
    system with no compound below zero (the flat hull of the elements)."""
    hull = Hull.from_formulas(
        ["Li2O", "Li2O", "LiO2", "Li", "NaCl", "Cs2O"], [-1.0, -2.1, 0.3, -0.05, 0.2, -1.0]
    )
    for formula, energy in [("Li2O2", -1.5), ("Li", 0.0), ("LiO2", 0.1), ("NaCl", 0.1), ("Na2Cl", -0.1),
                            ("Cs2O", -1.0), ("CsO", -0.2)]:  # fmt: skip
        want, have = hull.query(formula, energy), hull.query_many([formula], [energy])[0]
        assert have.e_above_hull == pytest.approx(want.e_above_hull, abs=1e-12), formula
        assert have.decomposition == want.decomposition, formula


def test_hull_command_shows_progress_only_on_a_terminal(tmp_path, capsys):
    """annotate's progress bar goes to stderr when asked, and the table is the same either way."""
    table = pd.DataFrame({"formula": ["Li2O2", "FeO", "Li5FeO4"], "e": [-1.5, -1.4, -1.9]})
    hull = Hull.from_formulas(["Li2O", "Fe2O3", "LiFeO2", "FeO"], [-2.1, -1.7, -2.0, -1.5])
    quiet = annotate(table, "formula", "e", hull)
    assert capsys.readouterr().err == ""
    shown = annotate(table, "formula", "e", hull, progress=True)
    assert "3/3" in capsys.readouterr().err
    pd.testing.assert_frame_equal(quiet, shown)
