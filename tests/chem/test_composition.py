from __future__ import annotations

import numpy as np
import pytest

from stoichgen.chem.composition import (
    Vocabulary,
    composition_to_fractions,
    integer_formula,
    paper_string,
    parse_formula,
    threshold_fractions,
)
from stoichgen.errors import FormulaError


def test_parse_sodium_nitride_is_not_missing():
    assert parse_formula("NaN").get_el_amt_dict() == {"Na": 1.0, "N": 1.0}


def test_parse_parentheses():
    assert parse_formula("Ce(AgGe)2").get_el_amt_dict() == {"Ce": 1.0, "Ag": 2.0, "Ge": 2.0}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("2-Feb", "spreadsheet date"),
        ("3-Feb", "spreadsheet date"),
        ("Xx2O", "unknown element symbol 'Xx'"),
        ("Fe0O", "zero or negative amount"),
        ("Fe-1O2", "zero or negative amount"),
        ("(FeO)0", "zero or negative amount"),
        ("", "empty formula"),
        ("H2O$", "invalid formula"),
    ],
)
def test_parse_rejects_with_reason(raw, reason):
    with pytest.raises(FormulaError, match=reason.replace("(", r"\(")):
        parse_formula(raw)


def test_vocabulary_ordered_by_atomic_number():
    comps = [parse_formula("MnO2"), parse_formula("LiH")]
    assert Vocabulary.from_compositions(comps).symbols == ("H", "Li", "O", "Mn")
    with pytest.raises(ValueError, match="ordered by atomic number"):
        Vocabulary(("O", "H"))
    with pytest.raises(ValueError, match="'Qq'"):
        Vocabulary(("H", "Qq"))


def test_round_trip_composition_vector_composition():
    vocab = Vocabulary(("Li", "O", "Mn", "Fe"))
    for formula in ["LiMn2O4", "Fe2O3", "Li4Mn5FeO12", "O2"]:
        x = composition_to_fractions(parse_formula(formula), vocab)
        assert x.sum() == pytest.approx(1.0)
        fractions = {vocab.symbols[i]: float(x[i]) for i in np.flatnonzero(x)}
        assert integer_formula(fractions) == parse_formula(formula).reduced_formula


def test_paper_string_and_integer_formula():
    kept = threshold_fractions(np.array([0.29, 0.57, 0.02, 0.12]))
    fractions = dict(zip(("Li", "O", "Fe", "Mn"), kept.tolist(), strict=True))
    fractions = {k: v for k, v in fractions.items() if v > 0}
    assert paper_string(fractions) == "Li0.30O0.58Mn0.12"
    assert integer_formula({"O": 0.6, "Fe": 0.4}) == "Fe2O3"


# --- adducts: "." may be a decimal point or a hydrate's dot; never guess --------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("CuSO4·5H2O", {"Cu": 1, "S": 1, "O": 9, "H": 10}),
        ("CuSO4*5H2O", {"Cu": 1, "S": 1, "O": 9, "H": 10}),
        ("Na2CO3 · 10H2O", {"Na": 2, "C": 1, "O": 13, "H": 20}),
        ("Li0.5CoO2", {"Li": 0.5, "Co": 1, "O": 2}),
        ("LiNi0.8Co0.15Al0.05O2", {"Li": 1, "Ni": 0.8, "Co": 0.15, "Al": 0.05, "O": 2}),
        ("Fe2.5O", {"Fe": 2.5, "O": 1}),
        ("CuSO4.H2O", {"Cu": 1, "S": 1, "O": 5, "H": 2}),
    ],
)
def test_adducts_and_decimals_read_right(raw, expected):
    assert parse_formula(raw).get_el_amt_dict() == pytest.approx(expected)


@pytest.mark.parametrize("raw", ["CuSO4.5H2O", "Na2CO3.10H2O", "MgSO4.7H2O"])
def test_ambiguous_dot_is_refused_naming_both_readings(raw):
    with pytest.raises(FormulaError, match="ambiguous") as info:
        parse_formula(raw)
    assert "·" in str(info.value) and "decimal" in str(info.value)


def test_threshold_fractions_vectorised():
    x = np.array([[0.5, 0.5, 0.0], [0.02, 0.01, 0.0], [0.9, 0.02, 0.08]])
    out = threshold_fractions(x, 0.03)
    np.testing.assert_allclose(out, [[0.5, 0.5, 0.0], [0, 0, 0], [0.9 / 0.98, 0.0, 0.08 / 0.98]])
