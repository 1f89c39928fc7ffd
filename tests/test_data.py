from __future__ import annotations

import hashlib

import numpy as np
import pytest

from stoichgen.chem.composition import Vocabulary
from stoichgen.data import (
    MinMaxNormaliser,
    _read_descriptors,
    _resource,
    element_descriptors,
    load_csv,
    load_mp_formation_energy,
)
from stoichgen.errors import DataError


def test_descriptor_table_checksum_shape_complete():
    from stoichgen.data import _resource

    assert hashlib.sha256(_resource("xenonpy_element_features.csv").read_bytes()).hexdigest() == (
        "4bb9e660fe1ee6123fac014d77056ec6aad1b917c7c4ac6a5af006c3721983f7"
    )
    table = element_descriptors()
    assert table.shape == (94, 58)
    assert table.index[0] == "H" and table.index[-1] == "Pu"
    assert not table.isna().any().any()


def test_bundled_mp_set_loads_with_exact_report():
    ds = load_mp_formation_energy()
    assert ds.report.n_read == 49546
    assert [(b.line, b.raw) for b in ds.report.bad_rows] == [
        (6150, "2-Feb"),
        (12628, "2-Feb"),
        (12670, "3-Feb"),
    ]
    assert all("spreadsheet date" in b.reason for b in ds.report.bad_rows)
    assert ds.report.n_duplicates == 0
    assert len(ds) == 49543
    assert len(ds.vocabulary) == 89
    assert ds.x_b().shape == (49543, 89)
    assert ds.x_bp().shape == (49543, 147)
    np.testing.assert_allclose(ds.x_b().sum(axis=1), 1.0)
    # the sodium nitride row "NaN" (line 9416 is Ba3NaN; a plain "NaN" row must be Na1 N1)
    nan_rows = ds.frame[ds.frame["formula"] == "NaN"]
    assert len(nan_rows) == 1
    assert nan_rows["composition"].iloc[0].get_el_amt_dict() == {"Na": 1.0, "N": 1.0}
    ce = ds.frame[ds.frame["formula"] == "Ce(AgGe)2"]["composition"].iloc[0]
    assert ce.get_el_amt_dict() == {"Ce": 1.0, "Ag": 2.0, "Ge": 2.0}
    y = ds.y
    assert y.min() == pytest.approx(-4.522498559) and y.max() == pytest.approx(4.355616808)


def test_x_p_of_water_is_weighted_mean():
    ds = load_mp_formation_energy()
    water = ds.frame.index[ds.frame["reduced_formula"] == "H2O"]
    table = element_descriptors()
    expected = 2 / 3 * table.loc["H"].to_numpy() + 1 / 3 * table.loc["O"].to_numpy()
    if len(water):
        np.testing.assert_allclose(ds.x_p()[water[0]], expected)


def test_x_p_of_water_in_user_csv(write_csv):
    ds = load_csv(write_csv("formula,y\nH2O,1.0\nLiH,2.0\n"), "formula", "y")
    table = element_descriptors()
    expected = 2 / 3 * table.loc["H"].to_numpy() + 1 / 3 * table.loc["O"].to_numpy()
    np.testing.assert_allclose(ds.x_p()[0], expected)
    assert ds.vocabulary.symbols == ("H", "Li", "O")
    np.testing.assert_allclose(ds.x_bp()[0], np.concatenate([[2 / 3, 0, 1 / 3], expected]))


def test_user_csv_bad_rows_reported(write_csv):
    path = write_csv(
        "formula,y\n"
        "NaCl,-2.0\n"  # line 2: fine
        "2-Feb,1\n"  # 3: spreadsheet date
        "Xx2O,1\n"  # 4: unknown symbol
        "Am2O3,1\n"  # 5: no descriptors
        "Fe0O,1\n"  # 6: zero amount
        "Fe-1O,1\n"  # 7: negative amount
        "LiF,abc\n"  # 8: non-numeric property
        "LiCl,NaN\n"  # 9: NaN property
        "LiBr,\n"  # 10: missing property
        "ClNa,-1.9\n"  # 11: duplicate of NaCl
        "NaN,0.5\n"  # 12: sodium nitride
    )
    ds = load_csv(path, "formula", "y")
    reasons = {b.line: b.reason for b in ds.report.bad_rows}
    assert sorted(reasons) == [3, 4, 5, 6, 7, 8, 9, 10]
    assert "spreadsheet date" in reasons[3]
    assert "'Xx'" in reasons[4]
    assert "'Am'" in reasons[5] and "descriptors" in reasons[5]
    assert "zero or negative" in reasons[6] and "zero or negative" in reasons[7]
    assert "'abc' is not a number" in reasons[8]
    assert "not a finite number" in reasons[9]
    assert "'' is not a number" in reasons[10]
    assert ds.report.n_duplicates == 1
    assert list(ds.frame["formula"]) == ["NaCl", "NaN"]
    assert ds.y.tolist() == [-2.0, 0.5]
    assert ds.report.n_loaded == 2


def test_user_csv_errors_raise_names_row(write_csv):
    path = write_csv("formula,y\nNaCl,1\nQq2,1\n")
    with pytest.raises(DataError, match=r"line 3: 'Qq2': unknown element symbol 'Qq'"):
        load_csv(path, "formula", "y", errors="raise")


def test_empty_file(write_csv):
    with pytest.raises(DataError, match="empty"):
        load_csv(write_csv(""), "formula", "y")


def test_header_only(write_csv):
    with pytest.raises(DataError, match="no rows"):
        load_csv(write_csv("formula,y\n"), "formula", "y")


def test_missing_column_named(write_csv):
    with pytest.raises(DataError, match="missing column 'energy'"):
        load_csv(write_csv("formula,y\nNaCl,1\n"), "formula", "energy")


def test_missing_file():
    with pytest.raises(DataError, match="no such file"):
        load_csv("/nonexistent/file.csv")


def test_all_rows_bad(write_csv):
    with pytest.raises(DataError, match="no usable rows"):
        load_csv(write_csv("formula,y\n2-Feb,1\n"), "formula", "y")


def test_vocabulary_restriction(write_csv):
    vocab = Vocabulary(("Na", "Cl"))
    ds = load_csv(write_csv("formula,y\nNaCl,1\nKCl,2\n"), "formula", "y", vocabulary=vocab)
    assert len(ds) == 1
    assert "'K' is not in the model's vocabulary" in ds.report.bad_rows[0].reason


def test_normaliser_exact_inverse_and_state_dict():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 6)) * [1, 10, 100, 0.1, 1, 1]
    x[:, 5] = 3.0  # constant column
    norm = MinMaxNormaliser.fit(x)
    z = norm.transform(x)
    assert z.min() == 0.0 and z[:, :5].max() == 1.0
    assert np.all(z[:, 5] == 0.0)
    np.testing.assert_allclose(norm.inverse_transform(z), x, rtol=0, atol=1e-12)
    again = MinMaxNormaliser.from_state_dict(norm.state_dict())
    assert again == norm
    np.testing.assert_array_equal(again.transform(x), z)
    with pytest.raises(ValueError, match="expected 6 columns"):
        norm.transform(np.zeros((1, 5)))


def test_random_split_paper_sizes_and_seeds():
    ds = load_mp_formation_energy()
    split = ds.random_split(seed=0)
    assert len(split.test) == 5506 and len(split.train) == len(ds) - 5506
    assert split.train.vocabulary == ds.vocabulary
    assert not set(split.train.frame["reduced_formula"]) & set(split.test.frame["reduced_formula"])
    again = ds.random_split(seed=0)
    assert list(again.test.frame["line"]) == list(split.test.frame["line"])
    other = ds.random_split(seed=1)
    assert list(other.test.frame["line"]) != list(split.test.frame["line"])
    assert split.info == {"kind": "random", "seed": 0, "n_test": 5506}


def test_range_split():
    ds = load_mp_formation_energy()
    split = ds.range_split(-1.0)
    assert split.train.y.max() <= -1.0 and split.test.y.min() > -1.0
    assert len(split.train) + len(split.test) == len(ds)
    with pytest.raises(DataError, match="empty"):
        ds.range_split(-10.0)


def test_altered_descriptor_table_is_refused(tmp_path):
    path = tmp_path / "table.csv"
    path.write_bytes(_resource("xenonpy_element_features.csv").read_bytes().replace(b"1.0", b"1.1", 1))
    with pytest.raises(DataError, match="was altered"):
        _read_descriptors(path)


def test_conflicting_duplicates_are_reported_by_row(write_csv):
    ds = load_csv(write_csv("c,y\nNaCl,-2.0\nKCl,-2.2\nClNa,-2.0\nNaCl,-1.5\n"), "c", "y")
    assert ds.report.n_duplicates == 2
    (conflict,) = ds.report.conflicts  # ClNa agrees with the kept NaCl; the last NaCl does not
    assert (conflict.line, conflict.value, conflict.kept_line, conflict.kept_value) == (5, -1.5, 2, -2.0)
    assert "line 5: 'NaCl' = -1.5 differs from the kept line 2: 'NaCl' = -2" in ds.report.summary()
