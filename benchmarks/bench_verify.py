"""`stoichgen verify`'s calibration and evaluation (issue 21), written to docs/verify/evaluation.md.

1. calibrate: elemental references for every element the sampled compounds hold, then the structure
   search of TRAIN training-split compounds (the bundled surrogate's split), anion shifts fitted on them
   only; written to src/stoichgen/verify/calibration.json (step 3 adds its candidates' references).
2. held out: test-split compounds through the same search (no known structure used), in a random order,
   until --test-minutes have passed: MAE against the bundled values, and the stability call
   (e_above_hull <= 0.1 against the hull of every *other* bundled compound) against the bundled values'.
3. Table 5: at the paper's ten targets, the top --top guided candidates (the default `generate`) and the
   substitution baseline's top --top: verified within 0.2 eV/atom of the target, within the surrogate's
   2 sigma, verified at or below the hull against the share the surrogate claims.

Every search goes through the cache of `stoichgen verify` (default settings), so a rerun only reports.

Run:  OMP_NUM_THREADS=1 python benchmarks/bench_verify.py --workers 2 [--out docs/verify/evaluation.md]
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import sys
import time
import warnings
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import numpy as np
import pandas as pd
from pymatgen.core import Composition

from common import cpu, publish
from stoichgen.chem.hull import Hull
from stoichgen.data import load_mp_formation_energy
from stoichgen.run import bundled_run_dir, run_split
from stoichgen.verify.batch import _cache_file, _read_cache, _warm, _work, _write_cache, cache_dir
from stoichgen.verify.footing import Calibration, fit_corrections
from stoichgen.verify.options import DEFAULT_OPTIONS
from stoichgen.verify.search import POTENTIAL_ELEMENTS

STABLE = 0.1  # eV/atom: the stability call
MAX_ATOMS = 10  # atoms per formula unit of the sampled known compounds (the search's time grows with it)


def sample(frame: pd.DataFrame, n: int, seed: int) -> list[str]:
    """``n`` reduced formulas of 2 to 4 elements, at most MAX_ATOMS atoms, elements CHGNet knows."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(frame))
    out = []
    for row in order:
        comp = frame["composition"].iloc[row]
        if not 2 <= len(comp) <= 4 or comp.num_atoms > MAX_ATOMS:
            continue
        if any(el.Z > POTENTIAL_ELEMENTS for el in comp):
            continue
        out.append(frame["reduced_formula"].iloc[row])
        if len(out) == n:
            break
    return out


def searched_phrase(searched: int, total: int, seconds: float) -> str:
    """How ``total`` results were had: ``searched`` by a search of ``seconds``, the rest from the cache."""
    cache = "from the result cache of an earlier run with the same settings"
    if searched == 0:
        return f"their searches read {cache}"
    if searched == total:
        return f"searched in {seconds / 60:.1f} min"
    return f"{searched} searched in {seconds / 60:.1f} min, {total - searched} read {cache}"


class Runner:
    """One pool of worker processes for the whole benchmark; every result goes through the cache."""

    def __init__(self, workers: int) -> None:
        self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_warm, initargs=("cpu", 1))  # fmt: skip
        self.folder = cache_dir()
        self.searched = 0  # how many names the last ``run`` searched (the rest came from the cache)

    def run(self, names: list[str], deadline: float | None = None, cached_only: bool = False) -> dict:
        results, todo = {}, []
        for name in dict.fromkeys(names):
            found = _read_cache(_cache_file(self.folder, DEFAULT_OPTIONS, name))
            if found is not None:
                results[name] = found
            elif not cached_only:
                todo.append(name)
        self.searched = len(todo)
        pending = {self.pool.submit(_work, (name, DEFAULT_OPTIONS, "cpu")): name for name in todo}
        done_count = 0
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED, timeout=30)
            for future in done:
                found = future.result()
                _write_cache(_cache_file(self.folder, DEFAULT_OPTIONS, pending.pop(future)), found)
                results[found.formula] = found
                done_count += 1
            print(f"  {done_count}/{len(todo)} searched", file=sys.stderr, flush=True)
            if deadline is not None and time.time() > deadline:
                for future in pending:
                    future.cancel()
                still = [f for f in pending if not f.cancelled()]
                for future in still:  # running ones finish (their time is spent already)
                    found = future.result()
                    _write_cache(_cache_file(self.folder, DEFAULT_OPTIONS, pending[future]), found)
                    results[found.formula] = found
                break
        return results


def references(runner: Runner, formulas: list[str], calibration: Calibration) -> Calibration:
    needed = sorted({el.symbol for f in formulas for el in Composition(f)} - set(calibration.elements))
    found = runner.run([f"element:{s}" for s in needed])
    elements = {**calibration.elements, **{s: found[f"element:{s}"].energy_per_atom for s in needed}}
    return Calibration(elements, calibration.corrections, calibration.fit)


def pr(called: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    tp = float((called & truth).sum())
    return (tp / called.sum() if called.sum() else math.nan, tp / truth.sum() if truth.sum() else math.nan)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--train", type=int, default=40)
    parser.add_argument("--test", type=int, default=300, help="held-out compounds sampled (an upper bound)")
    parser.add_argument("--test-minutes", type=float, default=20.0)
    parser.add_argument("--top", type=int, default=3)
    parser.add_argument("--table5-minutes", type=float, default=25.0)
    parser.add_argument("--reuse-test", action="store_true",
                        help="the held-out phase reports what a previous run searched, and searches none")
    parser.add_argument("--out")
    args = parser.parse_args()
    started = time.time()
    data = load_mp_formation_energy()
    split_info = json.loads((bundled_run_dir("surrogate-bp") / "config.json").read_text())["split"]
    split = run_split(data, split_info)
    train = sample(split.train.frame, args.train, seed=1)
    test = sample(split.test.frame, args.test, seed=2)
    runner = Runner(args.workers)
    known = dict(zip(data.frame["reduced_formula"], data.y, strict=True))

    # 1. calibration on training compounds only
    calibration = references(runner, train + test, Calibration())
    t0 = time.time()
    found = runner.run(train)
    train_seconds, train_searched = time.time() - t0, runner.searched
    energies = [found[f].energy_per_atom for f in train]
    calibration = fit_corrections(calibration, train, energies, [known[f] for f in train])
    fit = {**calibration.fit, "split": split_info, "settings": DEFAULT_OPTIONS.fingerprint(),
           "sample": f"{args.train} training compounds, 2-4 elements, <= {MAX_ATOMS} atoms, "
                     "seed 1"}  # fmt: skip
    calibration = Calibration(calibration.elements, calibration.corrections, fit)
    calibration.save()
    print(f"calibration: {calibration.corrections} {fit}", file=sys.stderr)

    # 2. held-out test compounds, in the sampled (random) order, until the time is up
    t0 = time.time()
    found = runner.run(test, deadline=t0 + 60 * args.test_minutes, cached_only=args.reuse_test)
    ran = [f for f in test if f in found]
    hull_rows = list(data.frame["reduced_formula"])
    lines = []
    for formula in ran:
        item = found[formula]
        energy = calibration.formation_energy(formula, item.energy_per_atom) if not item.reason else math.nan
        others = [i for i, f in enumerate(hull_rows) if f != formula]
        line = {"formula": formula, "bundled": known[formula], "verified": energy, "seconds": item.seconds,
                "trials": item.trials, "reason": item.reason}  # fmt: skip
        if math.isfinite(energy):
            hull = Hull([hull_rows[i] for i in others], data.y[others])
            line["bundled_ehull"] = hull.query(formula, known[formula]).e_above_hull
            line["verified_ehull"] = hull.query(formula, energy).e_above_hull
        lines.append(line)
    held = pd.DataFrame(lines)
    ok = held[held["verified"].notna()]
    err = (ok["verified"] - ok["bundled"]).abs()
    called, truth = (ok["verified_ehull"] <= STABLE).to_numpy(), (ok["bundled_ehull"] <= STABLE).to_numpy()
    precision, recall = pr(called, truth)
    missed = (ok["verified"] - ok["bundled"] > 0.1).mean()

    # 3. Table 5: the guided top and the substitution baseline's top, verified
    from stoichgen.discover.pipeline import Generator
    from stoichgen.evaluate.benchmark import TABLE5_TARGETS, Known, substitute_candidates
    from stoichgen.verify.batch import bundled_hull

    generator = Generator.default()
    rows = []
    for target in TABLE5_TARGETS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            guided = generator.generate(target, args.top)
        for r in guided.itertuples():
            rows.append(("guided", target, r.formula, r.predicted_property, r.uncertainty, r.e_above_hull))
        pool = substitute_candidates(split, Known.from_split(split), target)
        from stoichgen.chem.composition import formula_fractions

        mean, spread = generator.surrogate.predict_fractions_with_spread(
            formula_fractions(pool, generator.vocabulary))
        for i in np.argsort(np.abs(mean - target), kind="stable")[: args.top]:
            placed = bundled_hull().query(pool[i], float(mean[i])).e_above_hull
            rows.append(("substitution", target, pool[i], float(mean[i]), float(spread[i]), placed))
    names = ["method", "target", "formula", "predicted", "sigma", "predicted_ehull"]
    cands = pd.DataFrame(rows, columns=names)
    from stoichgen.verify.search import check_composition

    def reduce(formula: str) -> str:
        try:
            return check_composition(formula)[0]
        except ValueError:  # too many atoms for the search: its reason, no energy
            return ""

    cands["reduced"] = [reduce(f) for f in cands["formula"]]
    searched = [f for f in cands["reduced"] if f]
    calibration = references(runner, searched, calibration)
    calibration.save()  # the candidates' references ship too: a user's first verify of them searches none
    t0 = time.time()
    # interleaved by rank, so that a cut by the time limit takes the lowest ranks of every target
    ranks = cands.groupby(["method", "target"]).cumcount()
    order = cands.assign(rank=ranks).sort_values("rank", kind="stable")
    found = runner.run([f for f in order["reduced"] if f], deadline=t0 + 60 * args.table5_minutes)
    table5_wall = time.time() - t0
    runner.pool.shutdown(cancel_futures=True)
    cands["reason"] = ["refused: too many atoms per formula unit" if not f else
                       "not run: time limit" if f not in found else found[f].reason
                       for f in cands["reduced"]]  # fmt: skip
    cands["verified"] = [calibration.formation_energy(f, found[f].energy_per_atom) if not r else math.nan
                         for f, r in zip(cands["reduced"], cands["reason"], strict=True)]  # fmt: skip
    placed = [bundled_hull().query(f, e) if math.isfinite(e) else None
              for f, e in zip(cands["reduced"], cands["verified"], strict=True)]  # fmt: skip
    cands["verified_ehull"] = [p.e_above_hull if p else math.nan for p in placed]
    cands["verified_decomposition"] = [p.decomposition if p else "" for p in placed]
    # far below the hull means the hull is thin there, not that the candidate is a find: name them
    deep = cands[cands["verified_ehull"] < -0.5].drop_duplicates("reduced")
    thin_hull = (
        f"{len(deep)} verified candidates sit more than 0.5 eV/atom below the bundled hull: "
        + "; ".join(f"{r.formula} ({r.verified_ehull:+.2f}, against {r.verified_decomposition})"
                    for r in deep.itertuples())
        + ". The hull they are placed against is made of the bare elements or of few compounds where the "
        "bundled set holds no compound of an element pair they contain, so such a placement measures the "
        "data's gap, not a discovery; their verified formation energies are the meaningful number."
    ) if len(deep) else "No verified candidate sits more than 0.5 eV/atom below the bundled hull."
    cands["seconds"] = [found[f].seconds if f in found else math.nan for f in cands["reduced"]]
    summary = []
    for method, part in cands.groupby("method", sort=False):
        v = part["verified"]
        summary.append({
            "method": method, "candidates": len(part), "verified": int(v.notna().sum()),
            "not run (time)": int((part["reason"] == "not run: time limit").sum()),
            "within 0.2 of target": float(((v - part["target"]).abs() <= 0.2).mean()),
            "within surrogate 2σ": float(((v - part["predicted"]).abs() <= 2 * part["sigma"]).mean()),
            "verified at/below hull": float((part["verified_ehull"] <= 0).mean()),
            "surrogate claims at/below hull": float((part["predicted_ehull"] <= 0).mean()),
            "verified MAE vs surrogate": float((v - part["predicted"]).abs().mean()),
        })  # fmt: skip
    summary = pd.DataFrame(summary)
    all_seconds = pd.concat([held["seconds"], cands["seconds"]])

    out = [
        "# `stoichgen verify`: evaluation", "",
        f"Measured by `OMP_NUM_THREADS=1 python benchmarks/bench_verify.py --workers {args.workers} --train "
        f"{args.train} --test {args.test} --test-minutes {args.test_minutes:g} --top {args.top} "
        f"--table5-minutes {args.table5_minutes:g} --out docs/verify/evaluation.md` "
        f"on {cpu()} ({os.cpu_count()} cores; {args.workers} worker processes, one torch thread each), "
        f"default settings (trials {DEFAULT_OPTIONS.trials}, at most {DEFAULT_OPTIONS.max_cell_atoms} atoms "
        f"per cell, {DEFAULT_OPTIONS.steps} FIRE steps, fmax {DEFAULT_OPTIONS.fmax}, budget "
        f"{DEFAULT_OPTIONS.budget_s:g} s), CHGNet 0.3.0. Total wall time "
        f"{(time.time() - started) / 60:.0f} min.",
        "", "## Calibration (training split only)", "",
        f"{fit['n_compounds']} training-split compounds of the bundled surrogate's split (random, seed 0, "
        f"5,506 test), sampled at random among 2-4 elements and at most {MAX_ATOMS} atoms per formula unit; "
        + searched_phrase(train_searched, len(train), train_seconds)
        + ". Anion shifts (eV per unit anion fraction): "
        + ", ".join(f"{a} {c:+.3f}" for a, c in calibration.corrections.items())
        + f". MAE on these training compounds: {fit['mae_before']:.3f} eV/atom before the shifts, "
        f"{fit['mae_after']:.3f} after (in-sample).", "",
        "## Held-out test-split compounds", "",
        f"Sampled {len(test)} test-split compounds (same filter, seed 2) and ran them in that random order "
        "for "
        f"{args.test_minutes:g} min: **{len(held)} compounds run**, "
        f"{len(ok)} with a verified energy"
        + ("." if len(held) >= 200 else f" — fewer than the 200 the issue asks; the limit is the time "
           f"(≈{held['seconds'].mean():.0f} s per compound per core on this CPU, 2 cores)."),
        "",
        "| metric | value |", "|---|---|",
        f"| MAE verified vs bundled formation energy | {err.mean():.3f} eV/atom |",
        f"| median absolute error | {err.median():.3f} eV/atom |",
        f"| share within 0.1 eV/atom | {(err <= 0.1).mean():.2f} |",
        f"| share verified > 0.1 eV/atom above the bundled value (search missed the ground state, or the "
        f"potential's error) | {missed:.2f} |",
        f"| stability call (e_above_hull ≤ {STABLE}) precision | {precision:.2f} |",
        f"| stability call recall | {recall:.2f} |",
        f"| stable by the bundled values (the base rate: calling every compound stable gets a precision of "
        f"{(ok['bundled_ehull'] <= STABLE).mean():.2f}) | "
        f"{int((ok['bundled_ehull'] <= STABLE).sum())} of {len(ok)} |",
        f"| failed rows | {int(held['verified'].isna().sum())} |",
        f"| seconds per compound (mean / max) | {held['seconds'].mean():.1f} / {held['seconds'].max():.1f} |",
        "",
        "The hull of each held-out compound is every *other* bundled compound (its own value left out), for "
        "both the bundled and the verified call.", "",
        "## Table-5 targets: what the verification says about our candidates", "",
        f"The top {args.top} guided candidates of each of the ten targets (the default `stoichgen generate`) "
        f"and the top {args.top} of the substitution baseline (`evaluate.benchmark.substitute_candidates`, "
        "ranked by the surrogate)"
        + (f" — top {args.top}, not the issue's 10, for time." if args.top < 10 else ".")
        + f" Searched in {table5_wall / 60:.1f} min (limit {args.table5_minutes:g}). Shares are over all "
        "candidates (a row without a verified energy counts as not within and not below the hull); "
        "σ is the surrogate's calibrated spread (guided: the non-ranking members').", "",
        "| " + " | ".join(summary.columns) + " |", "|" + "---|" * len(summary.columns),
        *["| " + " | ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in r) + " |"
          for r in summary.itertuples(index=False)],
        "", thin_hull, "", f"Seconds per candidate over everything searched: mean {all_seconds.mean():.1f}, "
        f"max {all_seconds.max():.1f}.", "",
        "## What the verification cannot see", "",
        f"- **Ground states the search misses.** On the held-out known compounds, {missed:.0%} come out more "
        "than 0.1 eV/atom above their bundled value. Part of that is CHGNet's own error, but a search of "
        f"{DEFAULT_OPTIONS.trials} random structures in cells of at most {DEFAULT_OPTIONS.max_cell_atoms} "
        "atoms cannot reach ground states with large cells or ordered sublattices: a verified energy is an "
        "upper bound on what the composition can do, and a candidate that verifies above the hull may still "
        "be stable.",
        "- **The potential's error.** CHGNet is trained on Materials Project relaxations, the same source "
        "as the bundled data: it shares the GGA/GGA+U footing and some of its blind spots, and it is a fit "
        "(tens of meV/atom on its own test set, more far from its training structures).",
        "- **The footing.** The anion shifts and the elemental references make the verified energies "
        "comparable with the bundled values on average; per chemistry the offset can differ (transition "
        "metal oxides and fluorides, where MP2020 applies U corrections that are not fitted here).",
        "- **Temperature, disorder, kinetics.** All energies are 0 K, ordered, and say nothing of whether "
        "a compound can be made.",
        "",
        "### Candidates", "",
        "| method | target | formula | predicted | σ | verified | verified e_above_hull | s | reason |",
        "|---|---|---|---|---|---|---|---|---|",
        *[f"| {r.method} | {r.target} | {r.formula} | {r.predicted:.2f} | {r.sigma:.2f} | {r.verified:.2f} | "
          f"{r.verified_ehull:.2f} | {r.seconds:.0f} | {r.reason} |" for r in cands.itertuples()],
    ]  # fmt: skip
    publish("\n".join(out), args.out)
    held.to_csv(Path(args.out or "evaluation.md").with_name("held_out.csv"), index=False)
    cands.to_csv(Path(args.out or "evaluation.md").with_name("table5.csv"), index=False)


if __name__ == "__main__":
    main()
