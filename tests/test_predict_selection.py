"""The winner's curse: the bundled surrogate's members split into those that select and those that report
(predict.MemberSplit), each group calibrated on the run's calibration rows."""

from __future__ import annotations

import numpy as np
import pytest

from stoichgen.chem.composition import formula_fractions
from stoichgen.predict import MemberSplit, Surrogate, calibration_rows, spread_factor
from stoichgen.run import bundled_run_dir
from stoichgen.train import _SurrogateLoop


@pytest.fixture(scope="module")
def surrogate():
    return Surrogate.from_run(bundled_run_dir("surrogate-bp"))


def test_calibration_share_is_train_py_s():
    from stoichgen import predict

    assert predict.CALIBRATION_SHARE == _SurrogateLoop.CALIBRATION_SHARE


def test_calibration_rows_reproduce_the_stored_spread_scale(surrogate):
    # the rows train.py calibrated on, drawn again: the whole ensemble's factor comes out as stored
    train = surrogate.record.load_split().train
    x, y = calibration_rows(surrogate.record, train.x_b(), train.y)
    assert len(y) == int(len(train.y) * 0.05)
    factor = spread_factor(surrogate.members_fractions(x), y)
    assert factor == pytest.approx(float(surrogate.model.spread_scale), rel=1e-3)


def test_members_agree_with_the_ensemble_mean_and_spread(surrogate):
    x = formula_fractions(["NaCl", "Al2O3", "LiFePO4"], surrogate.vocabulary)
    each = surrogate.members_fractions(x)
    mean, spread = surrogate.predict_fractions_with_spread(x)
    assert each.shape == (5, 3)
    np.testing.assert_allclose(each.mean(axis=0), mean, atol=1e-5)
    np.testing.assert_allclose(each.std(axis=0) * float(surrogate.model.spread_scale), spread, atol=1e-5)


def test_select_and_report_use_disjoint_members(surrogate):
    split = surrogate.member_split
    assert (split.select, split.report) == ((0, 1, 2), (3, 4))
    assert split.select_scale > 0 and split.report_scale > 0
    x = formula_fractions(["NaCl", "Al2O3"], surrogate.vocabulary)
    each = surrogate.members_fractions(x)
    mean, spread = surrogate.report_fractions_with_spread(x)
    np.testing.assert_allclose(mean, each[3:].mean(axis=0))
    np.testing.assert_allclose(spread, each[3:].std(axis=0) * split.report_scale)
    chosen, _ = surrogate.select_fractions_with_spread(x)
    np.testing.assert_allclose(chosen, each[:3].mean(axis=0))


def test_a_small_ensemble_selects_and_reports_with_all():
    assert MemberSplit.groups(3) == ((0, 1, 2), (0, 1, 2))
    assert MemberSplit.groups(4) == ((0, 1), (2, 3))
    with pytest.raises(ValueError, match="role"):
        MemberSplit((0,), (1,), 1.0, 1.0).estimate(np.zeros((2, 1)), "rank")
