"""Evaluating one run on the data and split it was trained on: ``stoichgen evaluate RUN_DIR``.

>>> table = evaluate_run(bundled_run_dir("cgan-bp"), [-2.0], n=16)    # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from stoichgen.errors import EvaluateError, check_int, check_targets
from stoichgen.evaluate.metrics import (
    Generates,
    calibration,
    check_request,
    property_metrics,
    sample_quality,
    target_metrics,
)
from stoichgen.nearest import NearestIndex
from stoichgen.predict import MAX_SAMPLES, Predictor, Sampler, Surrogate
from stoichgen.run import RunRecord


def check_judge(judge: RunRecord, run: RunRecord) -> Predictor:
    """A judge must be a property predictor (not a generator, whose own head would grade its samples)
    trained on the run's data and split: a judge that saw the run's test rows would grade its
    candidates with answers it was given."""
    if not judge.kind.predicts or judge.kind.samples:
        raise EvaluateError(
            f"the judge {judge.source} is a {judge.kind.label}; a judge must be a property predictor "
            "(a DNN run), independent of any generator"
        )
    if judge.vocabulary.symbols != run.vocabulary.symbols:
        raise EvaluateError(f"the judge {judge.source} uses another element vocabulary than the run")
    if judge.data != run.data or judge.split != run.split:
        raise EvaluateError(
            f"the judge {judge.source} was trained on {judge.data.describe()}, split {judge.split}; the run "
            f"on {run.data.describe()}, split {run.split}: train the judge on the run's data and split"
        )
    return Predictor.from_record(judge)


def parse_targets(text: str) -> str | np.ndarray:
    """``"test"`` or a comma-separated list of numbers.

    >>> parse_targets("-2.0,-1.5").tolist(), parse_targets("test")
    ([-2.0, -1.5], 'test')
    """
    if text.strip() == "test":
        return "test"
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise EvaluateError(f"targets {text!r}: expected 'test' or numbers like -2.0,-1.5") from None
    return check_targets(values)


def evaluate_run(
    run_dir: Path | str,
    targets: str | Sequence[float] | np.ndarray = "test",
    n: int = 256,
    seed: int = 0,
    judge: Path | str | None = None,
    quality_targets: int = 50,
    generator_for: Callable[[Sampler, Path], Generates] | None = None,
) -> pd.DataFrame:
    """Table 2 (generative runs; both spaces for x^bp) and Table 4 (runs with a property head) for one run,
    on the data and split it was trained on. ``targets="test"``: every test-split property (the paper's
    protocol). One row per metric set, with its wall time in seconds.

    Beside Table 2, generative runs also get ``sample_quality`` (uniqueness, novelty, SMACT, neutrality,
    and, given a ``judge`` run (a DNN on the same split), the independent property error) over at most
    ``quality_targets`` of the targets (a seeded random subset: it decodes every row with pymatgen).
    That row needs the generation pipeline: ``generator_for(sampler, run_dir)`` (pass
    ``stoichgen.Generator``, as ``stoichgen evaluate`` does); without it the row is left out.
    """
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise EvaluateError(f"run directory {str(run_dir)!r} does not exist")
    record = RunRecord.load(run_dir)
    check_int(n, "n (samples per target)", 1, MAX_SAMPLES)
    if not isinstance(targets, str):
        targets = check_targets(targets)
    elif targets != "test":
        raise EvaluateError(f"targets {targets!r}: expected 'test' or numbers")
    predictor = None if judge is None else check_judge(RunRecord.load(judge), record)
    dataset = record.load_data()
    test = record.load_split(dataset).test
    rows = []
    if record.kind.samples:
        sampler = Sampler.from_record(record)
        values = test.y if isinstance(targets, str) else check_request(targets, n)
        for space in ("b", "bp") if sampler.representation == "bp" else ("b",):
            started = time.perf_counter()
            nearest = NearestIndex.from_dataset(dataset, sampler.normaliser, space)  # type: ignore[arg-type]
            m = target_metrics(sampler, nearest, values, n, seed)
            rows.append({
                "metric": f"Table 2, near() in x^{space} (whole data set)", "mae": m.mae, "rmse": m.rmse,
                "distance_e3": m.distance_per_dim_e3, "targets": len(values), "samples": m.n_samples,
                "empty": m.n_empty, "seconds": time.perf_counter() - started,
            })  # fmt: skip
    if record.kind.samples and generator_for is not None:
        started = time.perf_counter()
        subset = values
        if len(values) > quality_targets:
            subset = values[np.random.default_rng(seed).choice(len(values), quality_targets, replace=False)]
        quality, _ = sample_quality(generator_for(sampler, run_dir), subset, n, seed, predictor)
        rows.append({
            "metric": "beyond the paper (generate --balance none)", "targets": len(subset),
            "samples": quality.n_samples, "uniqueness": quality.uniqueness, "novelty": quality.novelty,
            "smact_valid": quality.smact_valid, "charge_neutral": quality.charge_neutral,
            "judge_mae": quality.judge_mae, "judge_mae_novel": quality.judge_mae_novel,
            "seconds": time.perf_counter() - started,
        })  # fmt: skip
    if record.kind.predicts:
        started = time.perf_counter()
        if record.kind.spread:
            c = calibration(Surrogate.from_record(record), test)
            name, mae, rmse, n = "surrogate on the test split", c.mae, c.rmse, c.n
            extra = {
                "within_1_spread": c.within_1,
                "within_2_spread": c.within_2,
                "median_spread": c.median_spread,
            }
        else:
            m = property_metrics(Predictor.from_record(record), test)
            name, mae, rmse, n = "Table 4, P(.) on the test split", m.mae, m.rmse, m.n
            extra = {"distance_e3": np.nan, "empty": 0}
        seconds = time.perf_counter() - started
        rows.append(
            {
                "metric": name,
                "mae": mae,
                "rmse": rmse,
                "targets": n,
                "samples": n,
                **extra,
                "seconds": seconds,
            }
        )
    return pd.DataFrame(rows)
