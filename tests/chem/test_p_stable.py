"""p_stable against a direct normal CDF."""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm

from stoichgen.chem.hull import p_stable


def test_p_stable_is_the_normal_cdf_at_zero():
    rng = np.random.default_rng(0)
    e_hull, spread = rng.normal(0, 0.2, 50), rng.uniform(0.01, 0.3, 50)
    direct = [norm(loc=e, scale=s).cdf(0.0) for e, s in zip(e_hull, spread, strict=True)]
    np.testing.assert_allclose(p_stable(e_hull, spread), direct, rtol=1e-12)
    # by hand for one: 0.1 below the hull with sd 0.1 is one sd below
    assert p_stable(np.array([-0.1]), np.array([0.1]))[0] == math.erfc(-1 / math.sqrt(2)) / 2


def test_p_stable_is_nan_without_a_hull():
    assert np.isnan(p_stable(np.array([np.nan]), np.array([np.nan]))).all()
