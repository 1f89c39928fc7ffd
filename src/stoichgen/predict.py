"""Using trained runs: a ``Sampler`` draws raw vectors from a generator (CondGAN or CondVAE) at target
property values; a ``Predictor`` predicts the property of compositions (a DNN, or a CondGAN's P head).

>>> sampler = Sampler.from_run(bundled_run_dir("cgan-bp"))
>>> sampler.sample(-2.0, n=4, seed=0).shape  # x^b fractions (89 elements) then x^p (58 descriptors)
(4, 147)
>>> predictor = Predictor.from_run(bundled_run_dir("cgan-bp"))
>>> bool(predictor.predict_formulas(["NaCl"])[0] < 0)
True
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import numpy as np
import torch
from torch import nn

from stoichgen.chem.composition import Vocabulary, formula_fractions
from stoichgen.chem.hull import Hull, p_stable
from stoichgen.data import MinMaxNormaliser, descriptor_matrix
from stoichgen.errors import RunError, check_int
from stoichgen.io import atomic_write_text
from stoichgen.run import RunRecord, bundled_run_dir

__all__ = [
    "DEFAULT_SURROGATE",
    "MAX_SAMPLES",
    "MemberSplit",
    "Predictor",
    "Sampler",
    "StabilityCalibration",
    "Surrogate",
    "bundled_run_dir",
]

DEFAULT_SURROGATE = "surrogate-bp"  # resources/models/<name>/: the bundled surrogate ensemble

MAX_SAMPLES = 1_000_000  # vectors per ``Sampler.sample`` call (about 1.2 GB for x^bp)
_CHUNK = 65_536  # rows scored at once by a surrogate (bounded memory for any number of formulas)


@dataclass(frozen=True, eq=False)
class _LoadedRun:
    """A run's model with what turns its numbers into compositions and properties."""

    model: nn.Module
    normaliser: MinMaxNormaliser
    property_normaliser: MinMaxNormaliser
    vocabulary: Vocabulary
    representation: str
    record: RunRecord

    @classmethod
    def from_run(cls, path: Path | str) -> Self:
        """Load a run directory (or its ``checkpoint.pt``).

        Raises:
            RunError: not a valid stoichgen run, or a run of a kind this class cannot use (a generator
                for a ``Predictor``, a DNN for a ``Sampler``), named in the message.
        """
        return cls.from_record(RunRecord.load(path))

    @classmethod
    def from_record(cls, record: RunRecord) -> Self:
        """The same from an already loaded ``RunRecord``."""
        reason = cls._refusal(record)
        if reason:
            raise RunError(f"run {record.source} holds a {record.kind.label}, {reason}")
        return cls(
            record.model(), record.normaliser, record.property_normaliser, record.vocabulary,
            record.representation, record,
        )  # fmt: skip

    @staticmethod
    def _refusal(record: RunRecord) -> str:
        """Why this kind of run cannot serve (empty: it can)."""
        return ""


class Predictor(_LoadedRun):
    """A trained property predictor: a DNN, or a CondGAN's P(.) head, with its normalisers."""

    @staticmethod
    def _refusal(record: RunRecord) -> str:
        return "" if record.kind.predicts else "which predicts no property"

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Property in data units for vectors in data units of the model's representation. Shape (N,)."""
        with torch.no_grad():
            p = self.model.predict(torch.tensor(self.normaliser.transform(x), dtype=torch.float32))  # (N, 1)
        return self.property_normaliser.inverse_transform(p.numpy())[:, 0]

    def features(self, x_b: np.ndarray) -> np.ndarray:
        """The model's input (x^b, or x^bp with x^p computed) for x^b fractions (N, V). Data units."""
        x_b = np.asarray(x_b, dtype=float)
        if self.representation == "bp":
            return np.hstack([x_b, x_b @ descriptor_matrix(self.vocabulary)])
        return x_b

    def predict_fractions(self, x_b: np.ndarray) -> np.ndarray:
        """Property of compositions given as x^b fractions (N, V); x^p is computed from them."""
        return self.predict(self.features(x_b))

    def predict_formulas(self, formulas: Sequence[str]) -> np.ndarray:
        """Property of formulas (parsed by pymatgen; elements must be in the vocabulary). Shape (N,)."""
        return self.predict_fractions(formula_fractions(formulas, self.vocabulary))


class Surrogate(Predictor):
    """A trained surrogate ensemble: the property's mean and spread (calibrated standard deviation).

    >>> surrogate = Surrogate.from_run(bundled_run_dir("surrogate-bp"))
    >>> mean, spread = surrogate.predict_formulas_with_spread(["NaCl", "Al2O3"])
    >>> bool(mean[1] < mean[0] < 0), bool((spread > 0).all())
    (True, True)
    """

    @staticmethod
    def _refusal(record: RunRecord) -> str:
        return "" if record.kind.spread else "which predicts no spread (train --model surrogate)"

    def predict_with_spread(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and spread in data units for vectors in data units. Shapes (N,), (N,)."""
        with torch.no_grad():
            z = torch.tensor(self.normaliser.transform(x), dtype=torch.float32)  # (N, D)
            mean, spread = self.model.predict_with_spread(z)  # (N, 1), (N, 1)
        scale = self.property_normaliser.maximum[0] - self.property_normaliser.minimum[0]
        return self.property_normaliser.inverse_transform(mean.numpy())[:, 0], spread.numpy()[:, 0] * scale

    def predict_fractions_with_spread(self, x_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and spread for x^b fractions (N, V), in float32 chunks (the search scores millions)."""
        x_b = np.asarray(x_b, dtype=np.float32)
        low = np.asarray(self.normaliser.minimum, dtype=np.float32)
        inverse_span = (1.0 / self.normaliser._scale).astype(np.float32)
        descriptors = descriptor_matrix(self.vocabulary).astype(np.float32)
        means, spreads = [], []
        for start in range(0, len(x_b), _CHUNK):
            part = x_b[start : start + _CHUNK]  # (C, V)
            if self.representation == "bp":
                part = np.hstack([part, part @ descriptors])  # (C, V + 58)
            z = torch.from_numpy((part - low) * inverse_span)  # (C, D), normalised
            with torch.no_grad():
                mean, spread = self.model.predict_with_spread(z)  # (C, 1), (C, 1)
            means.append(mean.numpy()[:, 0])
            spreads.append(spread.numpy()[:, 0])
        scale = self.property_normaliser.maximum[0] - self.property_normaliser.minimum[0]
        mean = np.concatenate(means).astype(float) * scale + self.property_normaliser.minimum[0]
        return mean, np.concatenate(spreads).astype(float) * scale

    def predict_formulas_with_spread(self, formulas: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Mean and spread (eV/atom for the bundled set) of formulas; elements must be in the vocabulary."""
        return self.predict_fractions_with_spread(formula_fractions(formulas, self.vocabulary))

    # -- selection and reporting by disjoint members (the winner's curse) ---------------------------------

    def members_fractions(self, x_b: np.ndarray) -> np.ndarray:
        """Every member's prediction in data units for x^b fractions (N, V), float32 chunks. Shape (K, N)."""
        x_b = np.asarray(x_b, dtype=np.float32)
        low = np.asarray(self.normaliser.minimum, dtype=np.float32)
        inverse_span = (1.0 / self.normaliser._scale).astype(np.float32)
        descriptors = descriptor_matrix(self.vocabulary).astype(np.float32)
        parts = []
        for start in range(0, len(x_b), _CHUNK):
            part = x_b[start : start + _CHUNK]  # (C, V)
            if self.representation == "bp":
                part = np.hstack([part, part @ descriptors])  # (C, V + 58)
            with torch.no_grad():
                z = torch.from_numpy((part - low) * inverse_span)  # (C, D), normalised
                parts.append(self.model.members_predict(z).numpy())  # (K, C, 1)
        each = np.concatenate(parts, axis=1)[:, :, 0] if parts else np.zeros((len(self.model.members), 0))
        scale = self.property_normaliser.maximum[0] - self.property_normaliser.minimum[0]
        return each.astype(float) * scale + self.property_normaliser.minimum[0]  # (K, N)

    @functools.cached_property
    def stability_calibration(self) -> StabilityCalibration:
        """The run's recalibration of ``p_stable`` (``StabilityCalibration``): read from the run directory's
        ``p_stable.json`` when it belongs to this checkpoint, else fitted (about 20 s for the bundled set)
        and written there for next time (a read-only run directory is fitted again per process)."""
        checkpoint = Path(self.record.source)
        digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest() if checkpoint.is_file() else ""
        stored = checkpoint.parent / STABILITY_CALIBRATION
        try:
            payload = json.loads(stored.read_text())
            if digest and payload.get("checkpoint_sha256") == digest:
                return StabilityCalibration(tuple(payload["knots"]), tuple(payload["values"]))
        except (OSError, ValueError, KeyError, TypeError):
            pass  # absent, damaged or another checkpoint's: fitted afresh below
        calibration = StabilityCalibration.fit(self)
        # a read-only run (an installed package) keeps the fit for this process only
        if digest:
            with contextlib.suppress(OSError):
                atomic_write_text(stored, json.dumps({"checkpoint_sha256": digest, "knots": calibration.knots,
                                                      "values": calibration.values}))  # fmt: skip
        return calibration

    @functools.cached_property
    def member_split(self) -> MemberSplit:
        """Which members select candidates and which report them, each group with its own spread factor
        fitted on the run's calibration rows (``MemberSplit.fit``; loads the run's data once)."""
        return MemberSplit.fit(self)

    def select_fractions_with_spread(self, x_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and calibrated spread of the selecting members (what a search ranks by). Shapes (N,), (N,)."""
        return self.member_split.estimate(self.members_fractions(x_b), "select")

    def report_fractions_with_spread(self, x_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and calibrated spread of the reporting members, none of which took part in selecting the
        rows: what is reported for a selected candidate. Shapes (N,), (N,)."""
        return self.member_split.estimate(self.members_fractions(x_b), "report")


CALIBRATION_SHARE = 0.05  # train.py's surrogate calibration share (kept equal by tests/test_predict.py)
STABILITY_CALIBRATION = "p_stable.json"  # a run directory's StabilityCalibration, tied to its checkpoint
ON_HULL = 1e-6  # eV/atom: "at or below the hull", with room for PhaseDiagram's rounding
SPREAD_QUANTILE = 0.683  # the share of calibration errors within one spread


@dataclass(frozen=True)
class MemberSplit:
    """Sample splitting against the winner's curse (Cox 1975; Zöllner & Pritchard 2007 in genetics): the
    ``select`` members rank candidates, the disjoint ``report`` members give the reported estimate, so a
    member's lucky error cannot both pick a row and vouch for it. Each group's spread (its members'
    standard deviation) gets its own factor, the 68.3 % quantile of |error| / std on the rows of the
    run's training split that no member trained on (train.py's calibration rows), as the full ensemble's
    ``spread_scale`` was fitted. With fewer than 4 members both groups are the whole ensemble.

    >>> split = MemberSplit((0, 1, 2), (3, 4), 1.5, 3.0)
    >>> mean, spread = split.estimate(np.array([[0.0], [0.2], [0.4], [1.0], [1.2]]), "report")
    >>> round(float(mean[0]), 6), round(float(spread[0]), 6)
    (1.1, 0.3)
    """

    select: tuple[int, ...]
    report: tuple[int, ...]
    select_scale: float
    report_scale: float

    @staticmethod
    def groups(k: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(select, report) member indices for an ensemble of ``k``: the last k // 2 report (k >= 4).

        >>> MemberSplit.groups(5), MemberSplit.groups(3)
        (((0, 1, 2), (3, 4)), ((0, 1, 2), (0, 1, 2)))
        """
        if k < 4:
            return tuple(range(k)), tuple(range(k))
        return tuple(range(k - k // 2)), tuple(range(k - k // 2, k))

    @classmethod
    def fit(cls, surrogate: Surrogate) -> MemberSplit:
        """The split of a surrogate run, factors fitted on its calibration rows."""
        record = surrogate.record
        select, report = cls.groups(len(surrogate.model.members))
        train = record.load_split().train
        x, y = calibration_rows(record, train.x_b(), train.y)
        each = surrogate.members_fractions(x)  # (K, C)
        return cls(select, report, spread_factor(each[list(select)], y), spread_factor(each[list(report)], y))

    def estimate(self, each: np.ndarray, role: str) -> tuple[np.ndarray, np.ndarray]:
        """Mean and calibrated spread of one group (``"select"`` or ``"report"``) from every member's
        predictions ``each`` (K, N). Shapes (N,), (N,)."""
        if role not in ("select", "report"):
            raise ValueError(f"role must be 'select' or 'report', not {role!r}")
        select = role == "select"
        members, scale = (self.select, self.select_scale) if select else (self.report, self.report_scale)
        group = each[list(members)]  # (G, N)
        return group.mean(axis=0), group.std(axis=0) * scale


def calibration_indices(record: RunRecord, n: int) -> np.ndarray:
    """Which of the ``n`` training-split rows no member of a surrogate run trained on: train.py's draw,
    repeated (its own generator, seeded with the run's seed + 1). Shape (C,)."""
    draws = torch.Generator().manual_seed(int(record.train["seed"]) + 1)
    order = torch.randperm(n, generator=draws).numpy()
    return order[: max(1, int(len(order) * CALIBRATION_SHARE))]


def calibration_rows(record: RunRecord, x_b: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows of the training split (x_b (N, V), y (N,)) that no member of a surrogate run trained on."""
    rows = calibration_indices(record, len(y))
    return x_b[rows], y[rows]


@dataclass(frozen=True)
class StabilityCalibration:
    """``p_stable`` recalibrated (isotonic regression: Zadrozny & Elkan 2002; Kuleshov et al. 2018). The
    normal error model's probability of lying at or below the hull, mapped to the share of compounds
    observed there, fitted on the run's calibration rows (no member trained on them) placed on the hull of
    the other training compounds. Real compounds sit near the hull and the errors have heavy tails, so the
    normal model is overconfident in both outer bins; the map is monotone and never reorders rows.

    >>> calibration = StabilityCalibration((0.0, 0.5, 1.0), (0.2, 0.5, 0.8))
    >>> calibration.apply(np.array([0.0, 0.25, 1.0, np.nan])).round(3).tolist()
    [0.2, 0.35, 0.8, nan]
    """

    knots: tuple[float, ...]
    values: tuple[float, ...]

    def apply(self, probability: np.ndarray) -> np.ndarray:
        """The recalibrated probabilities of normal-model ones (N,); NaN stays NaN. Shape (N,)."""
        probability = np.asarray(probability, dtype=float)
        mapped = np.interp(probability, self.knots, self.values)  # (N,), clipped at the ends
        return np.where(np.isnan(probability), np.nan, mapped)

    @classmethod
    def fit(cls, surrogate: Surrogate) -> StabilityCalibration:
        """Fit on a formation-energy surrogate run's calibration rows (loads the run's data once)."""
        from sklearn.isotonic import IsotonicRegression

        record = surrogate.record
        train = record.load_split().train
        rows = calibration_indices(record, len(train.y))
        others = np.setdiff1d(np.arange(len(train.y)), rows)
        hull = Hull(list(train.frame["reduced_formula"].iloc[others]), train.y[others])
        compositions = list(train.frame["composition"].iloc[rows])
        mean, spread = surrogate.report_fractions_with_spread(train.x_b()[rows])  # (C,), (C,)
        predicted = np.array([hull.query(c, float(m)).e_above_hull for c, m in zip(compositions, mean,
                                                                                  strict=True)])  # fmt: skip
        true = np.array([hull.query(c, float(y)).e_above_hull for c, y in zip(compositions, train.y[rows],
                                                                             strict=True)])  # fmt: skip
        usable = np.isfinite(predicted) & np.isfinite(true)
        if usable.sum() < 2:
            return cls((0.0, 1.0), (0.0, 1.0))  # nothing to learn from: the normal model as it is
        probability = p_stable(predicted[usable], spread[usable])
        observed = (true[usable] <= ON_HULL).astype(float)
        isotonic = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(probability, observed)
        knots = tuple(float(v) for v in isotonic.X_thresholds_)
        values = tuple(float(v) for v in isotonic.y_thresholds_)
        return cls(knots, values) if len(knots) >= 2 else cls((0.0, 1.0), (values[0], values[0]))


def spread_factor(each: np.ndarray, y: np.ndarray) -> float:
    """The factor that puts 68.3 % of the errors of the members' mean within one scaled standard
    deviation, for predictions ``each`` (G, N) of rows with true values ``y`` (N,).

    >>> round(spread_factor(np.array([[0.0, 0.0, 0.0], [2.0, 2.0, 2.0]]), np.array([1.0, 2.0, 3.0])), 3)
    1.366
    """
    ratio = np.abs(each.mean(axis=0) - y) / np.maximum(each.std(axis=0), 1e-12)
    return float(np.quantile(ratio, SPREAD_QUANTILE))


class Sampler(_LoadedRun):
    """A trained generative model with what is needed to turn its outputs into compositions."""

    @staticmethod
    def _refusal(record: RunRecord) -> str:
        return "" if record.kind.samples else "not a generative model"

    @property
    def property_range(self) -> tuple[float, float]:
        """The training split's property range (outside it, generation is extrapolation)."""
        return self.record.property_range()

    def sample(self, targets: float | np.ndarray, n: int = 256, seed: int = 0) -> np.ndarray:
        """``n`` vectors per target, in data units (x^b fractions first). Shape (T * n, D), target-major."""
        n = check_int(n, "n", 1)
        targets = np.atleast_1d(np.asarray(targets, dtype=float))
        if len(targets) * n > MAX_SAMPLES:
            raise RunError(f"{len(targets)} targets x {n} samples exceed {MAX_SAMPLES:,} vectors per call")
        y = self.property_normaliser.transform(np.repeat(targets, n)[:, None])  # (T * n, 1)
        rng = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            z = self.model.noise(len(y), rng)  # (T * n, Z) from the model's prior
            x = self.model.sample(torch.tensor(y, dtype=torch.float32), z).numpy()  # (T * n, D), normalised
        return self.normaliser.inverse_transform(x)

    @functools.cached_property
    def predictor(self) -> Predictor:
        """The model's own property head as a ``Predictor`` (a CondGAN's P), sharing its weights."""
        if not self.record.kind.predicts:
            raise RunError(
                f"run {self.record.source} holds a {self.record.kind.label}, which has no property head"
            )
        return Predictor(
            self.model, self.normaliser, self.property_normaliser, self.vocabulary, self.representation,
            self.record,
        )  # fmt: skip

    def predict_property(self, x: np.ndarray) -> np.ndarray:
        """The model's own P(x) in data units, for vectors in data units. Shape (N,)."""
        return self.predictor.predict(x)
