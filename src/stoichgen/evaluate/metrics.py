"""Metrics of generated compositions (paper Sec. 6) and the checks the paper leaves out.

- ``target_metrics`` (Table 2, Fig. 1): for each target y, n samples; near(x~) is the nearest composition
  of a reference set (the whole data set, as in the paper) in the model's min-max normalised x^b or x^bp
  space (``nearest.NearestIndex``); MAE / RMSE between y and near(y); d(x~, near(x~)) / dim(x~) x 1e3.
- ``property_metrics`` (Table 4): MAE / RMSE of a property predictor (CondGAN's P or the DNN) on a split.
- ``sample_quality``: what a perfect Table-2 score would hide (returning known compositions scores MAE
  0): uniqueness, novelty, SMACT validity, charge neutrality, and the property error judged by an
  independent predictor (the DNN), on all samples and on the novel ones.
- ``valence_metrics`` (Table 5): |valence|, MAE, RMSE and distance per target, raw and after balancing.

>>> from stoichgen.data import load_mp_formation_energy
>>> from stoichgen.predict import bundled_run_dir
>>> sampler = Sampler.from_run(bundled_run_dir("cgan-bp"))
>>> nearest = NearestIndex.from_dataset(load_mp_formation_energy(), sampler.normaliser, "b")
>>> m = target_metrics(sampler, nearest, targets=[-2.0], n=64)
>>> m.near_y.shape, bool(m.mae < 1.0)
((1, 64), True)
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from stoichgen.chem.composition import DEFAULT_THRESHOLD, Vocabulary, formula_fractions, threshold_fractions
from stoichgen.data import Dataset
from stoichgen.errors import EvaluateError, check_int, check_targets
from stoichgen.nearest import NearestIndex
from stoichgen.predict import MAX_SAMPLES, Predictor, Sampler, Surrogate


class Generates(Protocol):
    """What evaluation needs of a generator (``stoichgen.Generator`` is one): its vocabulary, its surrogate
    and ``generate``. Evaluation is handed one, so that it never imports the discovery room."""

    @property
    def vocabulary(self) -> Vocabulary: ...

    surrogate: Surrogate | None

    def generate(
        self, target: Any, n: int = 256, *, method: str = "guided", **options: Any
    ) -> pd.DataFrame: ...


def check_request(targets: Sequence[float] | np.ndarray, n: int) -> np.ndarray:
    """Targets as a float array (T,), after checking them and ``n`` (samples per target)."""
    check_int(n, "n (samples per target)", 1, MAX_SAMPLES)
    return check_targets(targets)


def check_vocabulary(model_vocabulary: Vocabulary, data: Dataset, what: str = "the model") -> None:
    """Refuse data whose elements are ordered differently from the model's x^b columns."""
    if model_vocabulary.symbols != data.vocabulary.symbols:
        raise EvaluateError(
            f"{what} was trained on a different element vocabulary ({len(model_vocabulary)} elements) "
            f"than the evaluation data {data.report.source!r} ({len(data.vocabulary)} elements)"
        )


def threshold_generated(x: np.ndarray, n_elements: int, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Threshold and renormalise the x^b part of generated vectors, keep any x^p part. Shape kept."""
    out = np.array(x, dtype=float)
    out[:, :n_elements] = threshold_fractions(out[:, :n_elements], threshold)
    return out


@dataclass(frozen=True)
class TargetMetrics:
    """Table 2 quantities. ``near_y`` and ``distance`` are (T, n), NaN where a sample decoded empty."""

    targets: np.ndarray  # (T,)
    near_y: np.ndarray  # (T, n) property of near(x~)
    distance: np.ndarray  # (T, n) d(x~, near(x~)), normalised units
    dim: int
    space: str

    @property
    def _error(self) -> np.ndarray:
        error = self.near_y - self.targets[:, None]  # (T, n)
        return error[np.isfinite(error)]

    @property
    def mae(self) -> float:
        return float(np.abs(self._error).mean())

    @property
    def rmse(self) -> float:
        return float(np.sqrt((self._error**2).mean()))

    @property
    def distance_per_dim_e3(self) -> float:
        return float(np.nanmean(self.distance) / self.dim * 1e3)

    @property
    def n_samples(self) -> int:
        return int(self.near_y.size)

    @property
    def n_empty(self) -> int:
        return int(np.isnan(self.near_y).sum())

    @property
    def per_target_mae(self) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-empty targets give NaN
            return np.nanmean(np.abs(self.near_y - self.targets[:, None]), axis=1)

    @property
    def per_target_rmse(self) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.sqrt(np.nanmean((self.near_y - self.targets[:, None]) ** 2, axis=1))


def target_metrics(
    sampler: Sampler,
    nearest: NearestIndex,
    targets: Sequence[float] | np.ndarray,
    n: int = 256,
    seed: int = 0,
    threshold: float = DEFAULT_THRESHOLD,
) -> TargetMetrics:
    """Generate ``n`` samples per target; compare each target with the property of near(x~).

    ``nearest`` must carry its rows' property (``NearestIndex.from_dataset``).
    """
    targets = check_request(targets, n)
    if nearest.y is None:
        raise EvaluateError("the nearest-composition index has no property values (build it from a Dataset)")
    y_ref = nearest.y
    n_b = len(sampler.vocabulary)
    x = threshold_generated(sampler.sample(targets, n, seed), n_b, threshold)  # (T * n, D)
    empty = x[:, :n_b].sum(axis=1) == 0
    near_y = np.full(len(x), np.nan)
    distance = np.full(len(x), np.nan)
    if (~empty).any():
        d, index = nearest.query(x[~empty])
        near_y[~empty], distance[~empty] = y_ref[index], d
    shape = (len(targets), n)
    return TargetMetrics(targets, near_y.reshape(shape), distance.reshape(shape), nearest.dim, nearest.space)


# --- property predictors (Table 4; the independent judge) ------------------------------------------------


@dataclass(frozen=True)
class PropertyMetrics:
    mae: float
    rmse: float
    n: int


def property_metrics(predictor: Predictor, data: Dataset) -> PropertyMetrics:
    """Table 4: MAE / RMSE of the predictor on ``data`` (the test split)."""
    check_vocabulary(predictor.vocabulary, data, "the predictor")
    error = predictor.predict(data.features(predictor.representation)) - data.y  # type: ignore[arg-type]
    return PropertyMetrics(float(np.abs(error).mean()), float(np.sqrt((error**2).mean())), len(error))


@dataclass(frozen=True)
class Calibration:
    """A surrogate's error and how well its spread covers it: shares of test errors within 1 and 2
    spreads (a calibrated Gaussian spread would give 0.68 and 0.95)."""

    mae: float
    rmse: float
    within_1: float
    within_2: float
    median_spread: float
    n: int


def calibration(surrogate: Surrogate, data: Dataset) -> Calibration:
    """``Calibration`` of a surrogate on ``data`` (the test split)."""
    check_vocabulary(surrogate.vocabulary, data, "the surrogate")
    mean, spread = surrogate.predict_with_spread(data.features(surrogate.representation))  # type: ignore[arg-type]
    error = np.abs(mean - data.y)
    return Calibration(
        float(error.mean()), float(np.sqrt((error**2).mean())), float((error <= spread).mean()),
        float((error <= 2 * spread).mean()), float(np.median(spread)), len(error),
    )  # fmt: skip


# --- beyond the paper ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SampleQuality:
    """Fractions over all (non-empty, decoded) samples; judge MAE in property units (NaN if no judge)."""

    uniqueness: float  # distinct reduced formulas per target / samples per target, averaged
    novelty: float  # reduced formula not in the model's training split
    smact_valid: float
    charge_neutral: float
    judge_mae: float  # |y - judge(composition)| over all samples
    judge_mae_novel: float  # the same over novel samples only
    n_samples: int
    n_novel: int


def sample_quality(
    generator: Generates,
    targets: Sequence[float] | np.ndarray,
    n: int = 256,
    seed: int = 0,
    judge: Predictor | None = None,
) -> tuple[SampleQuality, pd.DataFrame]:
    """Draw ``n`` compositions per target as a user gets them (``balance="none"``: raw decodes, empty
    decodes redrawn) and measure them. Returns the summary and the generated rows."""
    targets = check_request(targets, n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # extrapolation targets are intended here
        frame = generator.generate(targets, n, balance="none", seed=seed, method="paper")
    if frame.empty:
        raise EvaluateError("the model generated no non-empty composition")
    per_target = frame.groupby("target")["formula"]
    distinct = per_target.nunique() / per_target.size()
    novel = frame["not_in_training"].to_numpy()  # the paper's novelty: unseen in training
    judge_mae = judge_mae_novel = float("nan")
    if judge is not None:
        if judge.vocabulary.symbols != generator.vocabulary.symbols:
            raise EvaluateError("the judge and the generator use different element vocabularies")
        error = np.abs(judge.predict_formulas(frame["formula"].tolist()) - frame["target"].to_numpy())
        judge_mae = float(error.mean())
        judge_mae_novel = float(error[novel].mean()) if novel.any() else float("nan")
    quality = SampleQuality(
        uniqueness=float(distinct.mean()),
        novelty=float(novel.mean()),
        smact_valid=float(frame["smact_valid"].mean()),
        charge_neutral=float(frame["charge_neutral"].mean()),
        judge_mae=judge_mae,
        judge_mae_novel=judge_mae_novel,
        n_samples=len(frame),
        n_novel=int(novel.sum()),
    )
    return quality, frame


# --- Table 5: valence before and after balancing ----------------------------------------------------------


def valence_metrics(
    generator: Generates,
    nearest: NearestIndex,
    targets: Sequence[float] | np.ndarray,
    n: int = 256,
    seed: int = 0,
    methods: Sequence[str] = ("none", "mh", "exact"),
    max_iterations: int = 10_000,
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """Per method and target: mean |valence|, MAE and RMSE of near(y), distance / dim x 1e3.

    The same raw draws (same ``seed``) are balanced by each method; near() searches ``nearest`` (x^b
    space) with the x^b of each output formula. ``max_iterations``: MH iterations (the authors' 10,000).
    Rows whose valence could not be measured (too many elements) are left out of |valence|.
    Returns the per-(method, target) table and the generated rows per method.
    """
    targets = check_request(targets, n)
    rows, frames = [], {}
    for method in methods:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frame = generator.generate(
                targets, n, balance=method, seed=seed, max_iterations=max_iterations, method="paper"
            )
        distance, index = nearest.query(formula_fractions(frame["formula"], generator.vocabulary))
        frame = frame.assign(
            reference_row=index, reference_property=nearest.y[index], reference_distance=distance
        )
        frames[method] = frame
        for target, part in frame.groupby("target", sort=False):
            error = part["reference_property"].to_numpy() - target
            valence = np.abs(part["valence"].to_numpy())
            rows.append(
                {
                    "method": method,
                    "target": float(target),
                    "abs_valence": float(np.nanmean(valence)) if np.isfinite(valence).any() else np.nan,
                    "mae": float(np.abs(error).mean()),
                    "rmse": float(np.sqrt((error**2).mean())),
                    "distance_e3": float(part["reference_distance"].mean() / nearest.dim * 1e3),
                    "charge_neutral": float(part["charge_neutral"].mean()),
                    "n": len(part),
                }
            )
    return pd.DataFrame(rows), frames
