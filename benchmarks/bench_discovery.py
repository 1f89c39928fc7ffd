"""The discovery benchmark (../shared/EVALUATION.md): paper, paper+exact, screen, substitute and guided at
the paper's ten Table-5 targets and two targets outside the training range, 256 candidates each, judged by
gradient-boosted trees on descriptor statistics that no method uses.

Run:  python benchmarks/bench_discovery.py [--out docs/discovery/benchmark.md] [--methods guided,screen]
Prints the tables and writes them (Markdown) with the command and the machine.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import time
from pathlib import Path

import numpy as np

from stoichgen.chem.screening import screen_formulas
from stoichgen.data import load_mp_formation_energy, split_dataset
from stoichgen.discover.pipeline import Generator
from stoichgen.discover.search import DEFAULT_MAX_ATOMS, DEFAULT_MAX_ELEMENTS
from stoichgen.evaluate.benchmark import METHODS, TABLE5_TARGETS, per_target, run_methods, table
from stoichgen.evaluate.judge import Judge


def markdown(frame) -> str:
    cells = [
        [f"{v:.3f}" if isinstance(v, float) else str(v) for v in row] for row in frame.itertuples(index=False)
    ]
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])


def cpu() -> str:
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="write the Markdown report here")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("-n", type=int, default=256)
    args = parser.parse_args()
    methods = args.methods.split(",")

    dataset = load_mp_formation_energy()
    split = split_dataset(dataset, 0)
    started = time.perf_counter()
    judge = Judge.fit(split.train)
    judge_error = np.abs(judge.predict_fractions(split.test.x_b()) - split.test.y)
    print(f"judge: fitted in {time.perf_counter() - started:.0f} s; test MAE {judge_error.mean():.3f}")
    generator = Generator.default()
    low, high = split.train.y.min(), split.train.y.max()
    outside = (round(low - 0.5, 2), round(high + 0.5, 2))

    rows, seconds = run_methods(generator, split, TABLE5_TARGETS, args.n, methods)
    overall = table(rows, seconds, judge, split)
    targets = per_target(rows, judge, split)
    beyond_rows, beyond_seconds = run_methods(generator, split, outside, args.n, methods)
    beyond = per_target(beyond_rows, judge, split)

    test = split.test.frame
    comps = list(test["composition"])
    reduced = [c.get_reduced_composition_and_factor()[0] for c in comps]
    small = np.array([c.num_atoms <= DEFAULT_MAX_ATOMS and len(c) <= DEFAULT_MAX_ELEMENTS and len(c) >= 2
                      for c in reduced])  # fmt: skip
    valid = np.array(screen_formulas([c.formula.replace(" ", "") for c in reduced]))
    train_comps = list(split.train.frame["composition"])
    train_atoms = [c.get_reduced_composition_and_factor()[0].num_atoms for c in train_comps]
    realism = (f"training split: {np.mean([len(c) for c in train_comps]):.2f} elements per composition, "
               f"atoms per reduced formula unit median {np.median(train_atoms):.0f}, "
               f"90th percentile {np.percentile(train_atoms, 90):.0f}")  # fmt: skip
    space = (f"guided search space (SMACT-valid, 2-{DEFAULT_MAX_ELEMENTS} elements, at most "
             f"{DEFAULT_MAX_ATOMS} atoms): {np.mean(small & valid):.3f} of the {len(test):,} test-split "
             f"compounds lie inside it ({np.mean(valid):.3f} are SMACT-valid, {np.mean(small):.3f} small "
             "enough)")  # fmt: skip
    text = "\n\n".join([
        "# Discovery benchmark (../shared/EVALUATION.md)",
        f"Made by `python benchmarks/bench_discovery.py --out docs/discovery/benchmark.md` on {cpu()} "
        f"({platform.machine()}), 2 cores. Split 0 of the bundled MP set; every method uses the training "
        f"split only. {args.n} candidates per target and method.",
        f"Judge: scikit-learn gradient-boosted trees on descriptor statistics (mean, spread, min, max of "
        f"the 58 elemental descriptors over a composition's elements, element count, fractions), fitted "
        f"on the training split; **test-split MAE {judge_error.mean():.3f} eV/atom**. No method uses it.",
        f"Realism, {realism}. {space}.",
        "## The paper's ten Table-5 targets, all rows", markdown(overall),
        "## Per target", markdown(targets),
        f"## Beyond the training range (targets {outside[0]} and {outside[1]}; training split "
        f"[{low:.2f}, {high:.2f}])", markdown(beyond),
    ])  # fmt: skip
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
