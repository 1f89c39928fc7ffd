import math

import pandas as pd
import pytest

from stoichgen.verify import batch
from stoichgen.verify.options import VerifyOptions
from stoichgen.verify.search import Found

pytest.importorskip("chgnet")  # verify() refuses to start without the extra


def _fake_work(calls):
    def work(task):
        name, _options, _device = task
        calls.append(name)
        if name == "Li2O2":
            why = "every trial failed: relaxation exploded"
            return Found(name, math.nan, "", "", math.nan, 0, 2, 0.1, why)
        return Found(name, -1.0, "data_x\n", "P1 (1)", 10.0, 2, 2, 0.1)

    return work


def test_rows_keep_their_order_and_every_failure_its_reason(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(batch, "_work", _fake_work(calls))
    formulas = ["Li2O", "Xx2O", "Li2O2", "Am2O3", "Li2O"]
    frame = batch.verify(formulas, VerifyOptions(trials=2), cif_dir=tmp_path)
    assert frame["formula"].tolist() == ["Li2O", "Xx2O", "Li2O2", "Am2O3", "Li2O"]
    errors = frame["verify_error"].tolist()
    assert errors[0] == errors[4] == ""
    assert "Xx" in errors[1] and "unknown element" in errors[1]
    assert "exploded" in errors[2]
    assert "Am unknown to the potential" in errors[3]
    assert frame["verified_formation_energy"].notna().tolist() == [True, False, False, False, True]
    assert (tmp_path / "Li2O.cif").read_text() == "data_x\n"
    assert calls.count("Li2O") == 1  # each distinct formula is searched once


def test_a_rerun_is_read_from_the_cache(monkeypatch):
    calls = []
    monkeypatch.setattr(batch, "_work", _fake_work(calls))
    first = batch.verify(["Li2O"], VerifyOptions(trials=2))
    searched = list(calls)
    second = batch.verify(["Li2O"], VerifyOptions(trials=2))
    assert calls == searched and "Li2O" in searched
    pd.testing.assert_frame_equal(first, second)
    batch.verify(["Li2O"], VerifyOptions(trials=3))  # other settings: searched again
    assert calls.count("Li2O") == 2


def test_verify_frame_takes_the_top_k_per_target_and_marks_the_rest(monkeypatch):
    monkeypatch.setattr(batch, "_work", _fake_work([]))
    frame = pd.DataFrame({"target": [-1.0, -1.0, -2.0, -2.0], "formula": ["Li2O", "LiO2", "MgO", "Mg2O"]})
    out = batch.verify_frame(frame, top=1, options=VerifyOptions(trials=2))
    assert out["verified_formation_energy"].notna().tolist() == [True, False, True, False]
    assert out["verify_error"].iloc[1] == "not verified: outside the top 1 of its target"
    assert out.columns.tolist()[:2] == ["target", "formula"]
    with pytest.raises(batch.VerifyError, match="no column 'name'"):
        batch.verify_frame(frame, formula_column="name")
