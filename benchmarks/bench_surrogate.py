"""The surrogate ensemble's training: the members one after another (the readable loop) against all at once.

Both train the default surrogate (5 members of 147-128-64-1 on x^bp, batch 256, Adam(1e-3)) on the bundled
data through ``stoichgen.train.train``, in the same process, from the same seed, on the same bootstrap
resamples and batches, and are calibrated alike:

- reference: ``SurrogateEnsemble.loss`` (each member's own forward pass) with ``torch.optim.Adam`` over its
  30 parameter tensors, as the training loop did before the stacked step;
- stoichgen: ``fast.surrogate.SurrogateStepper`` (the members' weights stacked per layer, one compiled
  update of all of them).

Run:  python benchmarks/bench_surrogate.py [--steps 30000] [--device cpu] [--cold]
Prints each run's training time (compilation included) and its first step's time (the compilation),
optimiser steps/s, test MAE and 1-spread coverage, the ratio of the times, and the differences of MAE and
coverage (targets: >= 3x, |dMAE| <= 0.003, |dcoverage| <= 0.02). ``torch.compile`` keeps what it built
in a cache on disk (``/tmp/torchinductor_$USER``), so a machine's first run compiles for about 20 s on 2
cores and later ones for about 3 s; ``--cold`` compiles into a fresh, empty cache: the first run's time.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import stoichgen.train as training
from common import cpu
from stoichgen.evaluate.metrics import calibration
from stoichgen.predict import Surrogate
from stoichgen.run import RunRecord


class ReferenceLoop(training._SurrogateLoop):
    """The loop as it was: per-member forward passes, ``torch.optim.Adam``; same draws and calibration."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=self.options.lr, betas=self.options.betas)
        self.chunk = 1  # one train_step at a time, on any device

    def train_step(self) -> dict[str, torch.Tensor]:
        k, b = self.bootstrap.shape[0], self.options.batch_size
        picks = torch.randint(0, self.bootstrap.shape[1], (k, b), generator=self.rng).to(self.device)
        rows = self.bootstrap.gather(1, picks)  # (K, B)
        loss, logs = self.net.loss(self.x[rows], self.y[rows])  # (K, B, D), (K, B, 1)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.detach(), "mse": logs["mse"].detach()}

    def optimizer_state(self) -> dict:
        return self.optimizer.state_dict()

    def sync_to_model(self) -> None:
        self.calibrate()


class FirstStepTimed:
    """Records how long a loop's first step took (for the stacked step: its compilation)."""

    first_step_s: float | None = None

    def train_step(self) -> dict[str, torch.Tensor]:
        if FirstStepTimed.first_step_s is not None:
            return super().train_step()
        start = time.perf_counter()
        logs = super().train_step()
        FirstStepTimed.first_step_s = time.perf_counter() - start
        return logs


class TimedReference(FirstStepTimed, ReferenceLoop):
    pass


class TimedStacked(FirstStepTimed, training._SurrogateLoop):
    pass


def train_once(out: Path, steps: int, device: str, reference: bool) -> tuple[float, float | None, Any]:
    """Train into ``out``; the training time (s), its first step's (None where steps ran in chunks, as
    CUDA graphs) and the calibration on the test split."""
    stacked = training._SurrogateLoop
    FirstStepTimed.first_step_s = None
    training._SurrogateLoop = TimedReference if reference else TimedStacked  # train() picks it by name
    try:
        result = training.train(
            "surrogate", "bp", out, steps=steps, device=device, force=True, progress=False
        )
    finally:
        training._SurrogateLoop = stacked
    record = RunRecord.load(out)
    test = calibration(Surrogate.from_record(record), record.load_split().test)
    return result.elapsed_s, FirstStepTimed.first_step_s, test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30_000, help="optimiser steps of each run")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--cold", action="store_true", help="compile into a fresh, empty cache")
    args = parser.parse_args()
    where = torch.cuda.get_device_name() if args.device == "cuda" else cpu()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.device}: {where}")
    with tempfile.TemporaryDirectory() as tmp:
        if args.cold:  # read by inductor at its first compilation, which has not happened yet
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(Path(tmp) / "inductor-cache")
        print("compilation cache:", "fresh (cold)" if args.cold else "the user's (warm after a first run)")
        runs = {}
        for name, reference in (("reference", True), ("stoichgen", False)):
            seconds, first, c = train_once(Path(tmp) / name, args.steps, args.device, reference)
            runs[name] = (seconds, c)
            print(
                f"{name:10s} {args.steps} steps in {seconds:7.1f} s ({args.steps / seconds:7.1f} steps/s, "
                f"first step {'-' if first is None else f'{first:.1f}'} s)  "
                f"test MAE {c.mae:.4f}  within 1 spread {c.within_1:.3f}  within 2 {c.within_2:.3f}"
            )
    (t_ref, c_ref), (t_new, c_new) = runs["reference"], runs["stoichgen"]
    print(
        f"ratio: {t_ref / t_new:.2f}x (target >= 3x)  dMAE {c_new.mae - c_ref.mae:+.4f} (target +-0.003)  "
        f"dcoverage {c_new.within_1 - c_ref.within_1:+.3f} (target +-0.02)"
    )


if __name__ == "__main__":
    main()
