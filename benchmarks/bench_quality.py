"""Time to quality: MAE between target and near(y) against training wall time for the default CondGAN(x^bp).

Trains ``stoichgen train --model cgan --repr bp`` with its default options (bundled MP set, paper split
seed 0) in chunks, resuming the same run, and after each chunk evaluates the paper's Table 2 protocol
on 200 random test targets (seed 0) x 256 samples: near(x~) is the nearest composition of the whole data
set in min-max normalised x^b space. Target: MAE <= 0.37 eV/atom (paper, CondGAN(x^bp)) within 15 min.

Run:  python benchmarks/bench_quality.py [--out runs/bench-quality] [--chunks 6]
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np

from stoichgen.data import load_mp_formation_energy, split_dataset
from stoichgen.evaluate.metrics import target_metrics
from stoichgen.nearest import NearestIndex
from stoichgen.options import make_options
from stoichgen.predict import Sampler
from stoichgen.train import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench-quality")
    parser.add_argument("--chunks", type=int, default=6, help="evaluations along the default budget")
    parser.add_argument("--targets", type=int, default=200)
    args = parser.parse_args()

    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    dataset = load_mp_formation_energy()
    test = split_dataset(dataset, 0).test
    targets = test.y[np.random.default_rng(0).choice(len(test), args.targets, replace=False)]
    total = make_options("cgan", "bp").steps
    print(f"default budget: {total} generator steps; {args.targets} test targets x 256 samples")
    print(f"{'steps':>8} {'train wall s':>12} {'MAE':>7} {'RMSE':>7} {'dist x1e3':>9} {'eval s':>7}")
    nearest = None
    for chunk in range(1, args.chunks + 1):
        steps = round(total * chunk / args.chunks)
        # the learning-rate schedule spans the whole default budget, as in one uninterrupted run
        result = train("cgan", "bp", out, steps=steps, resume=chunk > 1, progress=False, lr_decay_steps=total)
        start = time.perf_counter()
        sampler = Sampler.from_run(out)
        nearest = nearest or NearestIndex.from_dataset(dataset, sampler.normaliser, "b")
        m = target_metrics(sampler, nearest, targets, n=256, seed=0)
        evaluation_s = time.perf_counter() - start
        print(
            f"{result.steps:8d} {result.elapsed_s:12.0f} {m.mae:7.3f} {m.rmse:7.3f} "
            f"{m.distance_per_dim_e3:9.3f} {evaluation_s:7.1f}",
            flush=True,
        )
    verdict = "meets" if m.mae <= 0.37 and result.elapsed_s <= 15 * 60 else "misses"
    print(
        f"final: MAE {m.mae:.3f} eV/atom after {result.elapsed_s / 60:.1f} min of training: "
        f"{verdict} the target"
    )


if __name__ == "__main__":
    main()
