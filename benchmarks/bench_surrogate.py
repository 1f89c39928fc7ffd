"""The surrogate ensemble's training: the members one after another (the readable loop) against all at once.

Both train the default surrogate (5 members of 147-128-64-1 on x^bp, batch 256, Adam(1e-3)) on the bundled
data through ``stoichgen.train.train``, in the same process, from the same seed, on the same bootstrap
resamples and batches, and are calibrated alike:

- reference: ``SurrogateEnsemble.loss`` (each member's own forward pass) with ``torch.optim.Adam`` over its
  30 parameter tensors, as the training loop did before the stacked step;
- stoichgen: ``fast.surrogate.SurrogateStepper`` (the members' weights stacked per layer, one compiled
  update of all of them).

Run:  python benchmarks/bench_surrogate.py [--steps 30000] [--device cpu]
Prints each run's training time (compilation included), optimiser steps/s, test MAE and 1-spread coverage,
the ratio of the times, and the differences of MAE and coverage (targets: >= 3x, |dMAE| <= 0.003,
|dcoverage| <= 0.02).
"""

from __future__ import annotations

import argparse
import tempfile
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


def train_once(out: Path, steps: int, device: str, reference: bool) -> tuple[float, Any]:
    """Train into ``out``; the training time (s) and the calibration on the test split."""
    stacked = training._SurrogateLoop
    training._SurrogateLoop = ReferenceLoop if reference else stacked  # train() picks it by name
    try:
        result = training.train(
            "surrogate", "bp", out, steps=steps, device=device, force=True, progress=False
        )
    finally:
        training._SurrogateLoop = stacked
    record = RunRecord.load(out)
    return result.elapsed_s, calibration(Surrogate.from_record(record), record.load_split().test)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30_000, help="optimiser steps of each run")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = parser.parse_args()
    where = torch.cuda.get_device_name() if args.device == "cuda" else cpu()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.device}: {where}")
    with tempfile.TemporaryDirectory() as tmp:
        runs = {}
        for name, reference in (("reference", True), ("stoichgen", False)):
            seconds, c = train_once(Path(tmp) / name, args.steps, args.device, reference)
            runs[name] = (seconds, c)
            print(
                f"{name:10s} {args.steps} steps in {seconds:7.1f} s ({args.steps / seconds:7.1f} steps/s)  "
                f"test MAE {c.mae:.4f}  within 1 spread {c.within_1:.3f}  within 2 {c.within_2:.3f}"
            )
    (t_ref, c_ref), (t_new, c_new) = runs["reference"], runs["stoichgen"]
    print(
        f"ratio: {t_ref / t_new:.2f}x (target >= 3x)  dMAE {c_new.mae - c_ref.mae:+.4f} (target +-0.003)  "
        f"dcoverage {c_new.within_1 - c_ref.within_1:+.3f} (target +-0.02)"
    )


if __name__ == "__main__":
    main()
