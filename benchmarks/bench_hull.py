"""``stoichgen hull`` on many real formulas across many chemical systems: pymatgen's ``PhaseDiagram`` per
row (the readable reference, ``Hull.query``) against the batched lower hulls (``Hull.query_many``, what
``annotate`` and the command use).

Rows: formulas drawn with replacement from the bundled MP set (so spread over its chemical systems as the
data are), each energy moved by N(0, 0.1) eV/atom, seeded. Each path starts from a fresh ``Hull`` (no
cached diagram), in the same process, on the same rows; their results are compared row by row.

Run:  python benchmarks/bench_hull.py [--rows 5000] [--large 100000] [--out docs/hull/benchmark.md]
Prints both times on ``--rows`` rows, their ratio (target >= 10x), the largest difference of
e_above_hull and the count of differing decompositions (target: 0), and the batched time on ``--large``
rows (the reference is not run there: at its speed it would take about half an hour).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from common import cpu, publish
from stoichgen.chem.hull import Hull
from stoichgen.data import load_mp_formation_energy
from stoichgen.space.score import hull_of


def rows(count: int, seed: int) -> tuple[list[str], list[float]]:
    data = load_mp_formation_energy()
    rng = np.random.default_rng(seed)
    index = rng.choice(len(data.y), count, replace=True)
    formulas = list(data.frame["reduced_formula"].to_numpy()[index])
    return formulas, list(data.y[index] + rng.normal(0.0, 0.1, count))


def fresh_hull() -> Hull:
    return hull_of(load_mp_formation_energy())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out")
    args = parser.parse_args()

    formulas, energies = rows(args.rows, args.seed)
    systems = len({frozenset(Hull.from_formulas([f], [0.0]).elements) for f in formulas})

    hull = fresh_hull()
    start = time.perf_counter()
    reference = [hull.query(f, e) for f, e in zip(formulas, energies, strict=True)]
    reference_s = time.perf_counter() - start

    hull = fresh_hull()
    start = time.perf_counter()
    batched = hull.query_many(formulas, energies)
    batched_s = time.perf_counter() - start

    gap = max(abs(r.e_above_hull - b.e_above_hull) for r, b in zip(reference, batched, strict=True))
    differ = sum((r.decomposition, r.n_known, r.reason) != (b.decomposition, b.n_known, b.reason)
                 for r, b in zip(reference, batched, strict=True))  # fmt: skip

    large_formulas, large_energies = rows(args.large, args.seed + 1)
    large_systems = len({frozenset(Hull.from_formulas([f], [0.0]).elements) for f in set(large_formulas)})
    hull = fresh_hull()
    start = time.perf_counter()
    hull.query_many(large_formulas, large_energies)
    large_s = time.perf_counter() - start

    publish(
        "\n".join([
            "# `stoichgen hull`: pymatgen per row against the batched lower hulls",
            "",
            f"CPU: {cpu()} (one process). Command: `python benchmarks/bench_hull.py --rows {args.rows} "
            f"--large {args.large}`.",
            "",
            "| rows | chemical systems | path | seconds | ms per row |",
            "|---|---|---|---|---|",
            f"| {args.rows:,} | {systems:,} | reference: `Hull.query` (PhaseDiagram per system) | "
            f"{reference_s:.1f} | {1000 * reference_s / args.rows:.2f} |",
            f"| {args.rows:,} | {systems:,} | batched: `Hull.query_many` | {batched_s:.1f} | "
            f"{1000 * batched_s / args.rows:.2f} |",
            f"| {args.large:,} | {large_systems:,} | batched | {large_s:.1f} | "
            f"{1000 * large_s / args.large:.2f} |",
            "",
            f"Ratio on {args.rows:,} rows: **{reference_s / batched_s:.1f}x** (target >= 10x). Largest "
            f"|difference| of e_above_hull: {gap:.1e} eV/atom; rows whose decomposition, n_known or reason "
            f"differ: {differ}.",
        ]),
        args.out,
    )  # fmt: skip


if __name__ == "__main__":
    main()
