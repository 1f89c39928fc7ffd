"""The evaluation pieces of the reproduction: each a JSON file under ``results/``, computed once.

>>> names = [name for name, _ in pieces(Plan.full())]
>>> names[:3]
['table2/split-0/cgan-bp-b', 'table2/split-0/cgan-bp-bp', 'quality/split-0/cgan-bp']
"""

from __future__ import annotations

import functools
import json
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from stoichgen.chem.composition import formula_fractions, paper_string
from stoichgen.data import Dataset, Split, load_mp_formation_energy, split_dataset
from stoichgen.discover.pipeline import Generator
from stoichgen.evaluate.metrics import property_metrics, sample_quality, target_metrics, valence_metrics
from stoichgen.io import atomic_write_text
from stoichgen.nearest import NearestIndex
from stoichgen.paper.plan import (
    EXTRAPOLATION_Y_MAX,
    FIG1A_TARGETS,
    SPLIT_MODELS,
    TABLE5_TARGETS,
    Plan,
    RunSpec,
)
from stoichgen.predict import Predictor, Sampler

TABLE1_TARGET = -2.03
TABLE3_TARGETS = (-3.25, -2.03, -1.27, -1.05, -0.10)


class Store:
    """Finished pieces as JSON files under ``root``; a piece present on disk is never recomputed."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, name: str) -> Path:
        """The JSON file of piece ``name``."""
        return self.root / f"{name}.json"

    def done(self, name: str) -> bool:
        """Whether piece ``name`` is finished (its file exists)."""
        return self.path(name).is_file()

    def get(self, name: str, compute: Callable[[], dict]) -> dict:
        """Piece ``name`` from disk, or ``compute()`` it and store it (atomically) first."""
        found = self.load(name)
        if found is not None:
            return found
        path = self.path(name)
        started = time.monotonic()
        value = compute()
        value["seconds"] = round(time.monotonic() - started, 2)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(value, indent=1) + "\n")
        return value

    def load(self, name: str) -> dict | None:
        """Piece ``name`` from disk; None when it is not finished."""
        path = self.path(name)
        return json.loads(path.read_text()) if path.is_file() else None


class _Context:
    """Lazily loaded data, splits and models shared by the pieces."""

    def __init__(self, plan: Plan, out: Path) -> None:
        self.plan, self.out = plan, out

    @functools.cached_property
    def dataset(self) -> Dataset:
        return load_mp_formation_energy()

    @functools.cache  # noqa: B019 (one context per reproduce call)
    def split(self, seed: int) -> Split:
        return split_dataset(self.dataset, seed)

    def run_dir(self, spec: RunSpec) -> Path:
        return self.out / "runs" / spec.name

    def targets(self, seed: int) -> np.ndarray:
        test = self.split(seed).test
        n = min(self.plan.n_targets, len(test))
        return test.y[np.random.default_rng(seed).choice(len(test), n, replace=False)]

    @functools.cache  # noqa: B019
    def sampler(self, spec: RunSpec) -> Sampler:
        return Sampler.from_run(self.run_dir(spec))

    @functools.cache  # noqa: B019
    def generator(self, spec: RunSpec) -> Generator:
        return Generator.from_run(self.run_dir(spec))

    @functools.cache  # noqa: B019
    def nearest(self, spec: RunSpec, space: str) -> NearestIndex:
        """Nearest composition of the whole data set, in ``spec``'s normalised space (paper Sec. 6)."""
        return NearestIndex.from_dataset(self.dataset, self.sampler(spec).normaliser, space)  # type: ignore[arg-type]


def _spaces(representation: str) -> tuple[str, ...]:
    return ("b", "bp") if representation == "bp" else ("b",)


def _table2(ctx: _Context, spec: RunSpec, space: str) -> dict:
    m = target_metrics(
        ctx.sampler(spec), ctx.nearest(spec, space), ctx.targets(spec.split_seed), ctx.plan.n_samples,
        seed=spec.split_seed,
    )  # fmt: skip
    return {
        "mae": m.mae, "rmse": m.rmse, "distance_e3": m.distance_per_dim_e3,
        "n_samples": m.n_samples, "n_empty": m.n_empty, "n_targets": len(m.targets),
    }  # fmt: skip


def _table4(ctx: _Context, spec: RunSpec) -> dict:
    m = property_metrics(Predictor.from_run(ctx.run_dir(spec)), ctx.split(spec.split_seed).test)
    return {"mae": m.mae, "rmse": m.rmse, "n": m.n}


def _quality(ctx: _Context, spec: RunSpec) -> dict:
    judge = Predictor.from_run(ctx.run_dir(RunSpec("dnn", "bp", spec.split_seed)))
    targets = ctx.targets(spec.split_seed)[: ctx.plan.n_quality_targets]
    quality, _ = sample_quality(ctx.generator(spec), targets, ctx.plan.n_samples, spec.split_seed, judge)
    return asdict(quality)


def _table5(ctx: _Context, spec: RunSpec) -> dict:
    rows, frames = valence_metrics(
        ctx.generator(spec), ctx.nearest(spec, "b"), TABLE5_TARGETS, ctx.plan.n_samples, seed=spec.split_seed
    )
    raw, modified = frames["none"], frames["mh"]
    first = raw.groupby("target", sort=False).head(1).index  # one example per target (Table 6)
    examples = [
        {"target": float(raw.loc[i, "target"]), "generated": raw.loc[i, "composition"],
         "mh": modified.loc[i, "composition"], "exact": frames["exact"].loc[i, "composition"]}
        for i in first
    ]  # fmt: skip
    return {"rows": rows.to_dict(orient="records"), "examples": examples}


def _fig1a(ctx: _Context, spec: RunSpec) -> dict:
    m = target_metrics(ctx.sampler(spec), ctx.nearest(spec, "b"), FIG1A_TARGETS, ctx.plan.n_samples, seed=0)
    return {"targets": list(FIG1A_TARGETS), "near_y": [[float(v) for v in row] for row in m.near_y]}


def _fig1b(ctx: _Context, spec: RunSpec) -> dict:
    grid = np.round(np.arange(-4.5, 1.0 + 1e-9, ctx.plan.extrapolation_step), 3)
    m = target_metrics(ctx.sampler(spec), ctx.nearest(spec, "b"), grid, ctx.plan.n_samples, seed=0)
    return {
        "y_max": spec.train_max_property, "targets": grid.tolist(),
        "rmse": m.per_target_rmse.tolist(), "mae": m.per_target_mae.tolist(),
    }  # fmt: skip


def _examples(ctx: _Context, spec: RunSpec, targets: Sequence[float], n: int) -> list[dict]:
    """Raw generated compositions (no balancing) with P(x~), the nearest composition and near(y)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = ctx.generator(spec).generate(
            list(targets), n, balance="none", seed=spec.split_seed, method="paper"
        )
    _, index = ctx.nearest(spec, "b").query(formula_fractions(frame["formula"], ctx.dataset.vocabulary))
    rows = ctx.dataset.frame.iloc[index]
    return [
        {
            "target": float(t), "generated": g, "predicted": None if np.isnan(p) else float(p),
            "nearest": f, "nearest_normalised": paper_string(c.fractional_composition.as_dict()),
            "near_y": float(y),
        }
        for t, g, p, f, c, y in zip(
            frame["target"], frame["raw_composition"], frame["predicted_property"], rows["formula"],
            rows["composition"], rows["property"], strict=True,
        )
    ]  # fmt: skip


def pieces(plan: Plan) -> list[tuple[str, Callable[[_Context], dict]]]:
    """Every evaluation piece: (name, compute), in order."""
    out: list[tuple[str, Callable[[_Context], dict]]] = []
    for seed in plan.split_seeds:
        for model, representation in SPLIT_MODELS:
            spec = RunSpec(model, representation, seed)
            if model != "dnn":
                for space in _spaces(representation):
                    compute = functools.partial(_table2, spec=spec, space=space)
                    out.append((f"table2/{spec.name}-{space}", compute))
                out.append((f"quality/{spec.name}", functools.partial(_quality, spec=spec)))
            if model != "cvae":
                out.append((f"table4/{spec.name}", functools.partial(_table4, spec=spec)))
    first = plan.split_seeds[0]
    cgan_bp = RunSpec("cgan", "bp", first)
    out.append(("table5", functools.partial(_table5, spec=cgan_bp)))
    out.append(("fig1a", functools.partial(_fig1a, spec=cgan_bp)))
    for y_max in EXTRAPOLATION_Y_MAX:
        spec = RunSpec("cgan", "bp", first, y_max)
        out.append((f"fig1b/{spec.name.split('/')[1]}", functools.partial(_fig1b, spec=spec)))
    out.append(("table3", lambda ctx: {"rows": _examples(ctx, cgan_bp, TABLE3_TARGETS, 2)}))
    for model, representation in (("cvae", "b"), ("cvae", "bp"), ("cgan", "b"), ("cgan", "bp")):
        spec = RunSpec(model, representation, first)
        out.append((f"table1/{model}-{representation}", functools.partial(
            lambda ctx, spec: {"rows": _examples(ctx, spec, [TABLE1_TARGET], 9)}, spec=spec)))  # fmt: skip
    return out


def evaluate_all(plan: Plan, out: Path | str, log: Callable[[str], None] = print) -> Store:
    """Evaluate every piece of ``plan`` not yet in ``out/results/`` (the runs must be trained), logging
    each one; returns the store of finished pieces."""
    out = Path(out)
    store = Store(out / "results")
    ctx = _Context(plan, out)
    every = pieces(plan)
    todo = [(name, compute) for name, compute in every if not store.done(name)]
    if len(todo) < len(every):
        log(f"{len(every) - len(todo)} evaluation pieces already done, {len(todo)} to go")
    for name, compute in tqdm(todo, desc="evaluate", unit="piece", disable=not sys.stderr.isatty()):
        store.get(name, lambda compute=compute: compute(ctx))
        log(f"evaluated {name}")
    return store


# --- the report ------------------------------------------------------------------------------------------
