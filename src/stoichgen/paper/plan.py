"""What ``stoichgen reproduce`` trains: the plan (budgets, splits, evaluation sizes), the runs it needs,
and training them, reusing finished runs of the same settings.

>>> [spec.name for spec in run_specs(Plan.full())][:2]
['split-0/cgan-bp', 'split-0/dnn-bp']
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from stoichgen.errors import ReproduceError, StoichgenError
from stoichgen.io import atomic_write_text
from stoichgen.options import make_options, stored_options
from stoichgen.run import CHECKPOINT, RunRecord
from stoichgen.screen.backends import ray_session
from stoichgen.train import train

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
# TrainOptions a finished run must share with what the plan would train today to be reused
RUN_FIELDS = (
    "model", "representation", "split_seed", "seed", "train_max_property", "preset", "batch_size", "lr",
    "betas", "n_critic", "hidden", "lambda_fake_property", "lambda_real_property", "lr_final_fraction",
    "generator_ema", "likelihood", "kl_weight", "free_bits", "kl_warmup_steps", "latent_dim", "adversary",
    "conditional_prior", "property_weight",
)  # fmt: skip


@dataclass(frozen=True)
class Plan:
    """What ``reproduce`` trains and evaluates. ``steps`` None: each model's default training budget."""

    quick: bool
    split_seeds: tuple[int, ...] = (0, 1, 2)
    steps: tuple[tuple[str, int], ...] | None = None  # (model, steps) overrides
    compile: bool = True
    n_targets: int = 200  # Table 2 targets per split (random test rows)
    n_samples: int = 256
    n_quality_targets: int = 50  # targets for the beyond-the-paper metrics, per split
    extrapolation_step: float = 0.25  # Fig. 1B target grid spacing

    @classmethod
    def full(cls) -> Plan:
        """The paper's protocol: three splits, every model at its default budget (hours on 2 cores)."""
        return cls(quick=False)

    @classmethod
    def quick_plan(cls) -> Plan:
        """Every table and figure with small budgets (minutes), labelled QUICK in the report."""
        return cls(
            quick=True,
            steps=(("cgan", 2000), ("cvae", 1500), ("dnn", 1500)),
            compile=False,
            n_targets=40,
            n_samples=64,
            n_quality_targets=10,
            extrapolation_step=0.5,
        )

    def steps_for(self, model: str, representation: str = "bp") -> int:
        """The training steps of ``model`` on ``representation`` under this plan."""
        override = dict(self.steps or ())
        if model in override:
            return override[model]
        steps = make_options(model, representation).steps
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
        """The run's directory under ``runs/``, e.g. ``split-0/cgan-bp``."""
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
    steps = plan.steps_for(spec.model, spec.representation)
    resume = False
    if (out / CHECKPOINT).is_file():
        record = RunRecord.load(out)
        stored = stored_options(record)
        # today's preset too: a default changed since the run was trained must not be mixed in
        wanted = replace(
            make_options(spec.model, spec.representation),
            seed=spec.split_seed,
            split_seed=spec.split_seed,
            train_max_property=spec.train_max_property,
        )
        mismatch = {
            k: (getattr(stored, k), getattr(wanted, k))
            for k in RUN_FIELDS
            if getattr(stored, k) != getattr(wanted, k)
        }
        if mismatch:
            raise ReproduceError(
                f"run {str(out)!r} was trained with other settings (stored, now): {mismatch}; "
                "use another report directory (out=DIR)"
            )
        if record.progress.step >= steps:
            return out
        resume = True
        log(f"resuming {spec.name} at step {record.progress.step} of {steps}")
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
    """A report directory holds one plan: refuse to mix a quick run into a full one (or back), and refuse a
    non-empty directory that no reproduction made (its files would be mixed with the report's)."""
    if out.exists() and not out.is_dir():
        raise ReproduceError(f"report directory {str(out)!r} exists and is not a directory")
    path = out / "plan.json"
    training = {k: v for k, v in asdict(plan).items() if k in TRAINING_FIELDS}
    text = json.dumps(training, indent=2, sort_keys=True) + "\n"
    if path.is_file():
        stored = json.loads(path.read_text())
        if stored != json.loads(text):
            kind = "quick" if stored.get("quick") else "full"
            raise ReproduceError(
                f"{str(out)!r} holds a {kind} reproduction with another plan; use another report directory "
                "(out=DIR)"
            )
        return
    if out.is_dir() and any(out.iterdir()):
        raise ReproduceError(
            f"report directory {str(out)!r} is not empty and holds no reproduction (no plan.json); "
            "use a new or empty directory"
        )
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)


def train_all(
    plan: Plan, out: Path | str, log: Callable[[str], None] = print, workers: int = 1, ray: str | None = None
) -> list[Path]:
    """Train (or reuse) every run of the plan: one after another, or ``workers`` at once in local
    processes, or as Ray tasks (``ray``: a cluster's address, ``"auto"`` or ``"local"``; the report
    directory must then be on a file system every node shares). The runs are independent and each is
    seeded by its spec; every worker uses this process's torch thread count (one thread each would
    change the DNN's weights at the rounding level), so the weights are the same either way."""
    out = Path(out)
    check_plan(plan, out)
    specs = run_specs(plan)
    try:
        if ray is not None:
            return _train_on_ray(specs, plan, out / "runs", ray, workers)
        if workers > 1:
            context = multiprocessing.get_context("spawn")
            threads = torch.get_num_threads()
            pool = ProcessPoolExecutor(workers, mp_context=context, initializer=torch.set_num_threads,
                                       initargs=(threads,))  # fmt: skip
            with _passive_openmp(), pool:
                futures = [pool.submit(ensure_run, spec, plan, out / "runs", _stderr) for spec in specs]
                return [future.result() for future in futures]
        return [ensure_run(spec, plan, out / "runs", log) for spec in specs]
    except StoichgenError as err:
        raise ReproduceError(str(err)) from None


# Workers that together hold more threads than there are cores must not spin while they wait (OpenMP's
# default busy-waiting made two 2-thread runs on 2 cores take minutes instead of seconds), and MKL must
# not pick fewer threads when the machine is busy (that changed a DNN's weights at the rounding level);
# neither changes a run's numbers (tested)
PASSIVE_OPENMP = {"OMP_WAIT_POLICY": "PASSIVE", "MKL_DYNAMIC": "FALSE", "OMP_DYNAMIC": "FALSE"}


@contextlib.contextmanager
def _passive_openmp():
    """Processes started inside inherit ``PASSIVE_OPENMP`` (unless the user set it)."""
    before = {k: os.environ.get(k) for k in PASSIVE_OPENMP}
    os.environ.update({k: v for k, v in PASSIVE_OPENMP.items() if before[k] is None})
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _train_remote(spec: RunSpec, plan: Plan, runs_dir: Path, threads: int) -> Path:
    torch.set_num_threads(threads)  # Ray starts its workers with one thread
    return ensure_run(spec, plan, runs_dir, _stderr)


def _train_on_ray(specs: list[RunSpec], plan: Plan, runs_dir: Path, address: str, workers: int) -> list[Path]:
    with ray_session(address, workers, ReproduceError) as ray:
        task = ray.remote(num_cpus=1, max_retries=1, runtime_env={"env_vars": PASSIVE_OPENMP})(_train_remote)
        threads = torch.get_num_threads()
        return ray.get([task.remote(spec, plan, runs_dir.resolve(), threads) for spec in specs])
