from __future__ import annotations

import numpy as np
import pytest

from stoichgen.composition import (
    FormulaError,
    Vocabulary,
    composition_to_fractions,
    decode,
    decode_many,
    parse_formula,
    threshold_fractions,
)


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
        decoded = decode(x, vocab, threshold=0.0)
        assert decoded.composition.reduced_formula == parse_formula(formula).reduced_formula


def test_decode_paper_style_and_threshold():
    vocab = Vocabulary(("Li", "O", "Cr", "Mn"))
    decoded = decode(np.array([0.29, 0.57, 0.02, 0.12]), vocab)
    # Cr is below TH=0.03 and dropped; the rest is renormalised by 0.98
    assert set(decoded.fractions) == {"Li", "O", "Mn"}
    assert sum(decoded.fractions.values()) == pytest.approx(1.0)
    assert decoded.fractions["Li"] == pytest.approx(0.29 / 0.98)
    assert decoded.text == "Li0.30O0.58Mn0.12"
    assert decoded.n_elements == 3
    integer = parse_formula(decoded.formula)
    for symbol, fraction in decoded.fractions.items():
        assert integer.get_atomic_fraction(symbol) == pytest.approx(fraction, abs=0.01)


def test_decode_integer_formula_reduced():
    decoded = decode(np.array([0.6, 0.4]), Vocabulary(("O", "Fe")))
    assert decoded.formula == "Fe2O3"
    assert decoded.composition.reduced_formula == "Fe2O3"


def test_decode_empty_vector_reported_not_crashed():
    decoded = decode(np.array([0.01, 0.02, -0.5]), Vocabulary(("H", "He", "Li")))
    assert decoded.is_empty
    assert decoded.text == "" and decoded.formula == "" and decoded.composition is None


def test_decode_rejects_wrong_length():
    with pytest.raises(ValueError, match="does not match the vocabulary"):
        decode(np.zeros(3), Vocabulary(("H", "O")))


def test_threshold_fractions_vectorised():
    x = np.array([[0.5, 0.5, 0.0], [0.02, 0.01, 0.0], [0.9, 0.02, 0.08]])
    out = threshold_fractions(x, 0.03)
    np.testing.assert_allclose(out, [[0.5, 0.5, 0.0], [0, 0, 0], [0.9 / 0.98, 0.0, 0.08 / 0.98]])
    assert [d.is_empty for d in decode_many(x, Vocabulary(("H", "He", "Li")))] == [False, True, False]
