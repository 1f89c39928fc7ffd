"""Guided rows report what the members that did not select them say (predict.MemberSplit)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.stats import norm

from stoichgen.chem.composition import formula_fractions
from stoichgen.discover.pipeline import Generator


@pytest.fixture(scope="module")
def rows():
    generator = Generator.default()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return generator, generator.generate(-2.0, n=4, seed=0)


def test_rows_report_the_members_that_did_not_select(rows):
    generator, frame = rows
    surrogate = generator.surrogate
    x = formula_fractions(frame["formula"].tolist(), surrogate.vocabulary)
    mean, spread = surrogate.report_fractions_with_spread(x)
    np.testing.assert_allclose(frame["predicted_property"], mean, atol=1e-6)
    np.testing.assert_allclose(frame["uncertainty"], spread, atol=1e-6)
    np.testing.assert_allclose(frame["e_above_hull_uncertainty"], spread, atol=1e-6)
    # the hull is fixed: e_above_hull is the reported energy's place on it
    known = [generator.hull.query(f, m).e_above_hull for f, m in zip(frame["formula"], mean, strict=True)]
    np.testing.assert_allclose(frame["e_above_hull"], known, atol=1e-6)


def test_p_stable_is_the_recalibrated_normal_cdf_of_the_reported_e_above_hull(rows):
    generator, frame = rows
    direct = norm.cdf(0.0, loc=frame["e_above_hull"], scale=frame["e_above_hull_uncertainty"])
    calibration = generator.surrogate.stability_calibration
    np.testing.assert_allclose(frame["p_stable"], np.interp(direct, calibration.knots, calibration.values),
                               rtol=1e-12)  # fmt: skip
