"""Sampler and Predictor on the bundled runs."""

from __future__ import annotations

import numpy as np
import pytest

from stoichgen.chem.composition import formula_fractions
from stoichgen.errors import RunError
from stoichgen.predict import Predictor, Sampler
from stoichgen.run import bundled_run_dir


@pytest.fixture(scope="module")
def sampler():
    return Sampler.from_run(bundled_run_dir("cgan-bp"))


def test_samples_are_fractions_in_target_major_order(sampler):
    x = sampler.sample([-3.0, -0.5], n=5, seed=1)
    v = len(sampler.vocabulary)
    assert x.shape == (10, v + 58)
    assert (x[:, :v] >= -1e-6).all()
    # the first target's rows come first: P of each block follows its own target
    p = sampler.predict_property(x)
    assert p[:5].mean() < p[5:].mean()


def test_same_seed_same_samples_other_seed_other_samples(sampler):
    np.testing.assert_array_equal(sampler.sample(-2.0, 4, seed=3), sampler.sample(-2.0, 4, seed=3))
    assert not np.array_equal(sampler.sample(-2.0, 4, seed=3), sampler.sample(-2.0, 4, seed=4))


def test_predictor_matches_known_compounds():
    predictor = Predictor.from_run(bundled_run_dir("cgan-bp"))
    y = predictor.predict_formulas(["NaCl", "Al2O3", "Cu"])
    # trained P head: strongly bound oxides and halides far below an element's 0
    assert y[1] < -2.5 and y[0] < -1.5 and abs(y[2]) < 0.6
    np.testing.assert_allclose(
        predictor.predict_fractions(formula_fractions(["NaCl"], predictor.vocabulary)), y[:1]
    )


def test_predictor_shares_the_samplers_weights(sampler):
    assert sampler.predictor.model is sampler.model


def test_kinds_are_checked_by_the_registry():
    with pytest.raises(RunError, match="which predicts no property"):
        Predictor.from_run(bundled_run_dir("cvae-bp"))
    vae = Sampler.from_run(bundled_run_dir("cvae-bp"))
    assert vae.sample(-1.0, 3).shape[0] == 3
    with pytest.raises(RunError, match="no property head"):
        vae.predict_property(vae.sample(-1.0, 3))
