"""Evaluation against real compositions (paper Sec. 6): nearest real composition, MAE/RMSE, distance.

near(x~) is the nearest composition of a reference data set (by default the whole data set, as in the
paper) by Euclidean distance in the model's min-max normalised space: x^b only, or x^bp.

>>> nn_index = NearestReference(dataset, sampler.normaliser, "b")          # doctest: +SKIP
>>> metrics = target_metrics(sampler, nn_index, targets=[-2.0], n=256)      # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from sklearn.neighbors import NearestNeighbors

from stoichgen.composition import DEFAULT_THRESHOLD, threshold_fractions
from stoichgen.data import Dataset, MinMaxNormaliser
from stoichgen.sample import Sampler

Space = Literal["b", "bp"]


class NearestReference:
    """Nearest real composition of ``reference`` for generated vectors, in normalised x^b or x^bp space."""

    def __init__(self, reference: Dataset, normaliser: MinMaxNormaliser, space: Space = "b") -> None:
        self.reference = reference
        self.space = space
        self.n_b = len(reference.vocabulary)
        self.normaliser = normaliser
        self.y = reference.y
        self.index = NearestNeighbors(n_neighbors=1, algorithm="brute").fit(self._normalise(reference.x_bp()))

    def _normalise(self, x_bp: np.ndarray) -> np.ndarray:
        dim = self.n_b if self.space == "b" else x_bp.shape[1]
        lo = np.asarray(self.normaliser.minimum[:dim])
        span = np.asarray(self.normaliser.maximum[:dim]) - lo
        return (x_bp[:, :dim] - lo) / np.where(span > 0, span, 1.0)

    @property
    def dim(self) -> int:
        return self.n_b if self.space == "b" else self.n_b + 58

    def query(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distances and reference rows of the nearest compositions; ``x`` (N, >= dim) in data units."""
        if x.shape[1] < self.dim:
            raise ValueError(f"vectors have {x.shape[1]} columns; {self.space} space needs {self.dim}")
        distance, index = self.index.kneighbors(self._normalise(x), return_distance=True)
        return distance[:, 0], index[:, 0]


def prepare_generated(x: np.ndarray, n_elements: int, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Threshold and renormalise the x^b part of generated vectors, keep any x^p part. Shape kept."""
    out = np.array(x, dtype=float)
    out[:, :n_elements] = threshold_fractions(out[:, :n_elements], threshold)
    return out


@dataclass(frozen=True)
class TargetMetrics:
    """Table 2 quantities over all targets and samples (empty decodes excluded and counted)."""

    mae: float
    rmse: float
    distance_per_dim_e3: float
    n_samples: int
    n_empty: int
    per_target_mae: np.ndarray


def target_metrics(
    sampler: Sampler,
    nearest: NearestReference,
    targets: np.ndarray,
    n: int = 256,
    seed: int = 0,
    threshold: float = DEFAULT_THRESHOLD,
) -> TargetMetrics:
    """Generate ``n`` samples per target; compare each target with the property of near(x~)."""
    targets = np.asarray(targets, dtype=float)
    if targets.size == 0:
        raise ValueError("the target list is empty")
    x = prepare_generated(sampler.sample(targets, n, seed), len(sampler.vocabulary), threshold)
    y = np.repeat(targets, n)
    empty = x[:, : len(sampler.vocabulary)].sum(axis=1) == 0
    distance, index = nearest.query(x[~empty])
    error = nearest.y[index] - y[~empty]
    per_target = np.full(len(targets), np.nan)
    owner = np.repeat(np.arange(len(targets)), n)[~empty]
    sums = np.bincount(owner, weights=np.abs(error), minlength=len(targets))
    counts = np.bincount(owner, minlength=len(targets))
    per_target[counts > 0] = sums[counts > 0] / counts[counts > 0]
    return TargetMetrics(
        mae=float(np.abs(error).mean()),
        rmse=float(np.sqrt((error**2).mean())),
        distance_per_dim_e3=float(distance.mean() / nearest.dim * 1e3),
        n_samples=int(len(y)),
        n_empty=int(empty.sum()),
        per_target_mae=per_target,
    )
