from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from stoichgen.composition import Vocabulary
from stoichgen.data import Dataset, MinMaxNormaliser, load_csv
from stoichgen.evaluate import prepare_generated, target_metrics
from stoichgen.nearest import NearestIndex


@pytest.fixture
def dataset(write_csv) -> Dataset:
    return load_csv(write_csv("c,y\nNaCl,-2.0\nKCl,-2.2\nNaF,-3.0\nKF,-2.9\nNa,0.0\n"), "c", "y")


@dataclass
class ReplaySampler:
    """Returns given real vectors for each target: a generator that memorised the training data."""

    rows: np.ndarray
    vocabulary: Vocabulary

    def sample(self, targets, n, seed=0):
        return np.tile(self.rows, (len(np.atleast_1d(targets)), 1))[: len(np.atleast_1d(targets)) * n]


def test_exact_training_vectors_give_zero_error_and_distance(dataset):
    normaliser = MinMaxNormaliser.fit(dataset.x_bp())
    nearest = NearestIndex.from_dataset(dataset, normaliser, "b")
    nacl = dataset.x_bp()[[0]]
    metrics = target_metrics(ReplaySampler(nacl, dataset.vocabulary), nearest, np.array([-2.0]), n=1)
    assert metrics.mae == 0.0 and metrics.rmse == 0.0 and metrics.distance_per_dim_e3 == 0.0


def test_known_error_and_distance(dataset):
    normaliser = MinMaxNormaliser.fit(dataset.x_bp())
    nearest = NearestIndex.from_dataset(dataset, normaliser, "b")
    kf = dataset.x_bp()[[3]]
    metrics = target_metrics(ReplaySampler(kf, dataset.vocabulary), nearest, np.array([-2.0, -3.0]), n=1)
    assert metrics.mae == pytest.approx((0.9 + 0.1) / 2)
    assert metrics.rmse == pytest.approx(np.sqrt((0.81 + 0.01) / 2))
    assert metrics.per_target_mae.tolist() == pytest.approx([0.9, 0.1])
    # Na0.6Cl0.4 (x^b only): in normalised space its nearest is NaCl at a hand-computed distance
    vocab = dataset.vocabulary
    x = np.zeros((1, len(vocab)))
    x[0, vocab.index("Na")], x[0, vocab.index("Cl")] = 0.6, 0.4
    distance, index = nearest.query(x)
    assert dataset.frame["formula"][index[0]] == "NaCl"
    span = np.asarray(normaliser.maximum[: len(vocab)]) - np.asarray(normaliser.minimum[: len(vocab)])
    expected = np.sqrt(((0.1 / span[vocab.index("Na")]) ** 2) + ((0.1 / span[vocab.index("Cl")]) ** 2))
    assert distance[0] == pytest.approx(expected)


def test_prepare_generated_thresholds_only_fractions():
    x = np.array([[0.5, 0.48, 0.02, 7.0]])
    out = prepare_generated(x, 3)
    np.testing.assert_allclose(out, [[0.5 / 0.98, 0.48 / 0.98, 0.0, 7.0]])


def test_empty_target_list(dataset):
    normaliser = MinMaxNormaliser.fit(dataset.x_bp())
    nearest = NearestIndex.from_dataset(dataset, normaliser, "b")
    with pytest.raises(ValueError, match="empty"):
        target_metrics(ReplaySampler(dataset.x_bp()[[0]], dataset.vocabulary), nearest, np.array([]), n=1)
