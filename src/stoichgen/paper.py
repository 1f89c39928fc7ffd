"""Reproduce the paper's Tables 1-6 and Figure 1 (Sawada et al. 2019, Sec. 6): ``stoichgen reproduce``.

A thin layer over the library: it trains the runs it needs (or reuses finished ones in the report
directory), evaluates them with ``stoichgen.evaluate``, and writes ``report.md`` with the paper's numbers
beside ours, PNG figures and CSV files of the raw numbers. Every finished piece is stored on disk, so an
interrupted run resumes without redoing it.

>>> plan = Plan.full()                                           # doctest: +SKIP
>>> reproduce(plan, "docs/reproduction")                         # doctest: +SKIP
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from stoichgen.train import CHECKPOINT, TrainError, atomic_write_text, load_checkpoint, make_options, train

# (model, representation) trained on every random split; the DNN is the Table 4 baseline and the
# independent property judge of generated compositions.
SPLIT_MODELS: tuple[tuple[str, str], ...] = (
    ("cgan", "bp"),
    ("dnn", "bp"),
    ("cgan", "b"),
    ("cvae", "bp"),
    ("cvae", "b"),
)
EXTRAPOLATION_Y_MAX = (0.0, -1.0, -2.0)  # paper Fig. 1B: train on y <= these
TABLE5_TARGETS = (-4.49, -3.76, -3.45, -3.01, -2.50, -2.03, -1.52, -1.07, -0.48, -0.01)
FIG1A_TARGETS = (-3.24, -2.03, -0.10)


TRAINING_FIELDS = ("quick", "split_seeds", "steps", "compile")  # evaluation settings may change between runs


class ReproduceError(ValueError):
    """A report directory or plan that cannot be used."""


@dataclass(frozen=True)
class Plan:
    """What ``reproduce`` trains and evaluates. ``steps`` None: each model's default training budget."""

    quick: bool
    split_seeds: tuple[int, ...] = (0, 1, 2)
    steps: tuple[tuple[str, int], ...] | None = None  # (model, steps) overrides
    compile: bool = True
    n_targets: int = 1000  # Table 2 targets per split (random test rows)
    n_samples: int = 256
    n_quality_targets: int = 100  # targets for the beyond-the-paper metrics, per split
    extrapolation_step: float = 0.25  # Fig. 1B target grid spacing

    @classmethod
    def full(cls) -> Plan:
        return cls(quick=False)

    @classmethod
    def quick_plan(cls) -> Plan:
        return cls(
            quick=True,
            steps=(("cgan", 400), ("cvae", 1500), ("dnn", 1500)),
            compile=False,
            n_targets=40,
            n_samples=64,
            n_quality_targets=10,
            extrapolation_step=0.5,
        )

    def steps_for(self, model: str) -> int:
        override = dict(self.steps or ())
        if model in override:
            return override[model]
        steps = make_options(model, "bp").steps
        assert steps is not None
        return steps


@dataclass(frozen=True)
class RunSpec:
    """One training run of the plan."""

    model: str
    representation: str
    split_seed: int
    train_max_property: float | None = None

    @property
    def name(self) -> str:
        if self.train_max_property is not None:
            return f"extrapolation/{self.model}-{self.representation}-ymax{self.train_max_property:+.1f}"
        return f"split-{self.split_seed}/{self.model}-{self.representation}"


def run_specs(plan: Plan) -> list[RunSpec]:
    """Every run, in the order they are trained (one whole split first, so a partial report has it)."""
    specs = [RunSpec(m, r, plan.split_seeds[0]) for m, r in SPLIT_MODELS]
    specs += [RunSpec("cgan", "bp", plan.split_seeds[0], y) for y in EXTRAPOLATION_Y_MAX]
    specs += [RunSpec(m, r, s) for s in plan.split_seeds[1:] for m, r in SPLIT_MODELS]
    return specs


def ensure_run(spec: RunSpec, plan: Plan, runs_dir: Path, log: Callable[[str], None] = print) -> Path:
    """Train ``spec`` into ``runs_dir / spec.name`` unless already done; resume a partial run."""
    out = runs_dir / spec.name
    steps = plan.steps_for(spec.model)
    resume = False
    if (out / CHECKPOINT).is_file():
        payload = load_checkpoint(out)
        stored = payload["train"]
        wanted = {
            "model": spec.model,
            "representation": spec.representation,
            "split_seed": spec.split_seed,
            "seed": spec.split_seed,
            "train_max_property": spec.train_max_property,
        }
        mismatch = {k: (stored.get(k), v) for k, v in wanted.items() if stored.get(k) != v}
        if mismatch:
            raise ReproduceError(f"run {str(out)!r} was trained with other settings: {mismatch}")
        if payload["progress"]["step"] >= steps:
            return out
        resume = True
        log(f"resuming {spec.name} at step {payload['progress']['step']} of {steps}")
    else:
        log(f"training {spec.name}: {steps} steps")
    started = time.monotonic()
    train(
        spec.model,
        spec.representation,
        out,
        steps=steps,
        seed=spec.split_seed,
        split_seed=spec.split_seed,
        train_max_property=spec.train_max_property,
        compile=plan.compile,
        resume=resume,
        force=not resume,
        progress=sys.stderr.isatty(),
    )
    log(f"trained {spec.name} in {time.monotonic() - started:.0f} s")
    return out


def check_plan(plan: Plan, out: Path) -> None:
    """A report directory holds one plan: refuse to mix a quick run into a full one (or back)."""
    path = out / "plan.json"
    training = {k: v for k, v in asdict(plan).items() if k in TRAINING_FIELDS}
    text = json.dumps(training, indent=2, sort_keys=True) + "\n"
    if path.is_file():
        stored = json.loads(path.read_text())
        if stored != json.loads(text):
            kind = "quick" if stored.get("quick") else "full"
            raise ReproduceError(
                f"{str(out)!r} holds a {kind} reproduction with another plan; use another --out directory"
            )
        return
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)


def train_all(plan: Plan, out: Path | str, log: Callable[[str], None] = print) -> list[Path]:
    out = Path(out)
    check_plan(plan, out)
    try:
        return [ensure_run(spec, plan, out / "runs", log) for spec in run_specs(plan)]
    except TrainError as err:
        raise ReproduceError(str(err)) from None
