import json
import math

import pytest

from stoichgen.verify.footing import Calibration, anion_fractions, fit_corrections, shipped


def test_the_anion_is_the_most_electronegative_element_and_only_a_listed_one():
    assert anion_fractions("Li2O") == {"O": pytest.approx(1 / 3)}
    assert anion_fractions("LiFePO4") == {"O": pytest.approx(4 / 7)}
    assert anion_fractions("Fe3Al") == {}  # an intermetallic has no anion shift
    assert anion_fractions("O") == {}


def test_formation_energy_subtracts_references_and_adds_the_shift():
    cal = Calibration(elements={"Na": -1.0, "Cl": -2.0}, corrections={"Cl": 0.4})
    assert cal.formation_energy("NaCl", -3.5) == pytest.approx(-3.5 + 1.5 + 0.2)
    assert math.isnan(cal.formation_energy("KCl", -3.5))  # no K reference: NaN, never a silent zero
    assert cal.missing(["KCl", "NaCl"]) == ["K"]


def test_fit_recovers_a_known_shift_from_training_compounds_only():
    cal = Calibration(elements={"Li": 0.0, "Na": 0.0, "O": 0.0, "F": 0.0, "Mg": 0.0})
    formulas = ["Li2O", "Na2O", "MgO", "LiF", "NaF", "MgF2", "Li2O2"]
    fractions = [anion_fractions(f) for f in formulas]
    truth = {"O": -0.7, "F": 0.3}
    raw = [-1.0, -0.9, -1.5, -2.0, -1.8, -2.2, -0.8]
    known = [r + sum(truth[a] * x for a, x in fr.items()) for r, fr in zip(raw, fractions, strict=True)]
    fitted = fit_corrections(cal, [*formulas, "LiCl"], [*raw, math.nan], [*known, -1.0])
    assert fitted.corrections["O"] == pytest.approx(-0.7, abs=0.02)
    assert fitted.corrections["F"] == pytest.approx(0.3, abs=0.02)
    assert fitted.fit["n_compounds"] == 7  # the failed search (NaN) is left out
    assert "Cl" not in fitted.corrections  # fewer than 3 compounds: no shift
    assert fitted.fit["mae_after"] < fitted.fit["mae_before"]


def test_calibration_round_trips_and_the_shipped_one_is_usable():
    cal = Calibration({"O": -4.9}, {"O": -0.5}, {"n_compounds": 3})
    assert Calibration.from_json(cal.to_json()) == cal
    data = json.loads(shipped().to_json())
    assert all(math.isfinite(v) for v in data["elements"].values())
