"""Honest stability evaluation (in the spirit of Bartel et al., npj Comput. Mater. 6, 97 (2020)): for the
test-split compounds, e_above_hull against the training split's hull from their true formation energies
and from the bundled surrogate's predictions; the reliability of ``p_stable`` on them; a retrospective
discovery benchmark (the test split's compounds on or below the training split's hull are the
discoveries: does ``generate --objective stability --elements SYSTEM`` find them, and does a substitution
baseline ranked by the same surrogate?); plus the hull's speed and the hull picture.

Run:  python benchmarks/bench_stability.py --out docs/stability/evaluation.md --picture docs/images/hull.png
"""

from __future__ import annotations

import argparse
import functools
import itertools
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pymatgen.core import Composition

import stoichgen
from common import cpu, publish
from stoichgen.chem.hull import Hull, p_stable
from stoichgen.data import Dataset, load_mp_formation_energy, split_dataset
from stoichgen.discover.hull_table import plot_hull
from stoichgen.predict import Surrogate
from stoichgen.run import bundled_run_dir
from stoichgen.space.score import substitutes

ON_HULL = 1e-6  # eV/atom: "on or below the hull" with room for PhaseDiagram's rounding
RECALL_AT = (10, 50)
SUBSTITUTES = 5  # likely substitutes per element for the baseline (pymatgen's ion-substitution table)


def scores(true: np.ndarray, predicted: np.ndarray) -> tuple[float, float, float]:
    """Precision, recall and F1 of ``predicted`` against ``true`` (boolean arrays)."""
    hits = float((true & predicted).sum())
    precision = hits / max(1.0, float(predicted.sum()))
    recall = hits / max(1.0, float(true.sum()))
    return precision, recall, 2 * precision * recall / max(1e-12, precision + recall)


def reduced(formula: str) -> str:
    return Composition(formula).reduced_formula


def system_of(formula: str) -> frozenset[str]:
    return frozenset(el.symbol for el in Composition(formula))


def reliability(p: np.ndarray, observed: np.ndarray, bins: int = 10) -> tuple[float, list[str]]:
    """Expected calibration error of probabilities ``p`` (N,) against outcomes ``observed`` (N,) over
    ``bins`` equal-width bins, and the table's rows (bin, rows, mean predicted, observed share)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)  # (N,)
    ece, rows = 0.0, []
    for b in range(bins):
        inside = which == b
        if not inside.any():
            continue
        gap = abs(float(p[inside].mean()) - float(observed[inside].mean()))
        ece += inside.mean() * gap
        rows.append(f"| {edges[b]:.1f}–{edges[b + 1]:.1f} | {int(inside.sum()):,} | "
                    f"{p[inside].mean():.3f} | {observed[inside].mean():.3f} |")  # fmt: skip
    return float(ece), rows


def where_it_misses(predicted: np.ndarray, true: np.ndarray, spread: np.ndarray) -> list[str]:
    """Rows by predicted e_above_hull (N,): the observed stable share and the median standardised error
    (true - predicted) / spread, which shows real compounds pulled toward the hull."""
    rows = [
        "| predicted e_above_hull (eV/atom) | compounds | observed stable share "
        "| median (true − predicted) / σ |",
        "|---|---|---|---|",
    ]
    z = (true - predicted) / spread
    for low, high in ((-np.inf, -0.3), (-0.3, -0.1), (-0.1, 0.0), (0.0, 0.1), (0.1, 0.3), (0.3, np.inf)):
        inside = (predicted >= low) & (predicted < high)
        if inside.any():
            stable = np.mean(true[inside] <= ON_HULL)
            median = np.median(z[inside])
            rows.append(f"| {low:g} to {high:g} | {int(inside.sum()):,} | {stable:.3f} | {median:+.2f} |")
    return rows


def substitution_candidates(system: frozenset[str], train: Dataset, known: set[str]) -> list[str]:
    """Training compounds carried into ``system`` by replacing each element with itself or one of its
    likely substitutes (pymatgen's ion-substitution probabilities), the result's elements all in the
    system; training formulas left out (they make the hull)."""
    options = _substitution_options(train.vocabulary.symbols)
    out: dict[str, None] = {}
    for amounts in _training_amounts(train):
        if len(amounts) > len(system):
            continue
        choices = [sorted(options.get(a, {a}) & system) for a in amounts]
        if not all(choices):
            continue
        for image in itertools.product(*choices):
            if len(set(image)) < len(image):
                continue
            formula = reduced(" ".join(f"{b}{n:g}" for b, n in zip(image, amounts.values(), strict=True)))
            if formula not in known:
                out.setdefault(formula)
    return list(out)


_AMOUNTS: list[dict[str, float]] = []


@functools.cache
def _substitution_options(symbols: tuple[str, ...]) -> dict[str, set[str]]:
    return {a: {a} | set(substitutes(a, SUBSTITUTES)) for a in symbols}


def _training_amounts(train: Dataset) -> list[dict[str, float]]:
    if not _AMOUNTS:
        _AMOUNTS.extend(c.get_el_amt_dict() for c in train.frame["composition"])
    return _AMOUNTS


def ranked_by_stability(formulas: Sequence[str], generator: stoichgen.Generator, hull: Hull) -> list[str]:
    """``formulas`` by the surrogate's predicted e_above_hull against ``hull``, lowest first."""
    if not formulas:
        return []
    mean, _ = generator.surrogate.predict_formulas_with_spread(list(formulas))
    e_hull = np.array([hull.query(f, float(m)).e_above_hull for f, m in zip(formulas, mean, strict=True)])
    order = np.argsort(np.where(np.isfinite(e_hull), e_hull, np.inf), kind="stable")
    return [formulas[i] for i in order]


def retrospective(
    split, truth: np.ndarray, hull: Hull, generator: stoichgen.Generator, systems: int, seed: int
) -> list[str]:
    """Recall of held-out stable compounds (``truth``: the test split's true e_above_hull against the
    training hull, (N,)) by the guided search and by the substitution baseline, both on ``hull``."""
    test = split.test
    found = [f for f, e in zip(test.frame["reduced_formula"], truth, strict=True) if e <= ON_HULL]
    by_system: dict[frozenset[str], list[str]] = {}
    for formula in found:
        by_system.setdefault(system_of(formula), []).append(formula)
    # systems of 2-4 elements (the guided search's default reach), sampled with a fixed seed
    eligible = sorted((s for s in by_system if 2 <= len(s) <= 4), key=lambda s: "-".join(sorted(s)))
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(eligible), min(systems, len(eligible)), replace=False)
    sampled = [eligible[i] for i in sorted(picked)]
    known = set(split.train.frame["reduced_formula"])
    # the guided search as a user runs it, and with the common table (fewer rare valences)
    methods = {
        "`generate --objective stability --elements SYSTEM -n 50`": {},
        "the same, `--oxidation common`": {"oxidation": "common"},
        "substitution of training compounds, ranked by the surrogate": None,
    }
    hits = {(m, k): 0 for m in methods for k in RECALL_AT}
    per_system: dict[tuple[str, int], list[float]] = {(m, k): [] for m in methods for k in RECALL_AT}
    total, rows_seen, seconds = 0, dict.fromkeys(methods, 0), dict.fromkeys(methods, 0.0)
    for system in sampled:
        # the system's discoveries: held-out stable compounds whose elements all lie in it
        targets = {f for s, fs in by_system.items() if s <= system for f in fs}
        total += len(targets)
        for method, options in methods.items():
            started = time.perf_counter()
            if options is None:
                pool = substitution_candidates(system, split.train, known)
                ranked = ranked_by_stability(pool, generator, hull)
            else:
                frame = generator.generate(None, n=max(RECALL_AT), seed=0, objective="stability",
                                           elements=",".join(sorted(system)), **options)  # fmt: skip
                ranked = [reduced(f) for f in frame.sort_values(["rank"], kind="stable")["formula"]]
            seconds[method] += time.perf_counter() - started
            rows_seen[method] += min(len(ranked), max(RECALL_AT))
            for k in RECALL_AT:
                got = len(targets & set(ranked[:k]))
                hits[(method, k)] += got
                per_system[(method, k)].append(got / len(targets))
    lines = [
        f"{len(sampled)} systems of 2-4 elements sampled (seed {seed}) from the {len(eligible):,} that hold "
        f"a discovery; {total:,} discoveries in them (held-out compounds on or below the training hull whose "
        "elements all lie in the system).",
        "| method | recall@10 | recall@50 | mean per-system recall@10 / @50 | rows returned | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for method in methods:
        recall = [hits[(method, k)] / max(1, total) for k in RECALL_AT]
        mean = [float(np.mean(per_system[(method, k)])) for k in RECALL_AT]
        lines.append(f"| {method} | {recall[0]:.3f} | {recall[1]:.3f} | {mean[0]:.3f} / {mean[1]:.3f} | "
                     f"{rows_seen[method]:,} | {seconds[method]:.0f} |")  # fmt: skip
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None)
    parser.add_argument("--picture", default=None)
    parser.add_argument("--systems", type=int, default=120, help="chemical systems in the retrospective run")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    split = split_dataset(load_mp_formation_energy(), 0)
    train, test = split.train, split.test
    hull = Hull(list(train.frame["reduced_formula"]), train.y)
    surrogate = Surrogate.from_run(bundled_run_dir("surrogate-bp"))
    predicted, _ = surrogate.predict_with_spread(test.x_bp())
    started = time.perf_counter()
    true_e = np.array(
        [hull.query(c, y).e_above_hull for c, y in zip(test.frame["composition"], test.y, strict=True)]
    )
    pred_e = np.array(
        [hull.query(c, p).e_above_hull for c, p in zip(test.frame["composition"], predicted, strict=True)]
    )
    seconds = time.perf_counter() - started
    ok = np.isfinite(true_e) & np.isfinite(pred_e)
    truth = true_e
    # p_stable as generate reports it: the reporting members' mean and calibrated spread
    report_mean, report_spread = surrogate.report_fractions_with_spread(test.x_b())
    report_e = np.array([hull.query(c, float(m)).e_above_hull
                         for c, m in zip(test.frame["composition"], report_mean, strict=True)])  # fmt: skip
    normal = p_stable(report_e, report_spread)  # the normal error model alone
    probability = surrogate.stability_calibration.apply(normal)  # what generate reports
    usable = np.isfinite(probability) & np.isfinite(true_e)
    observed = (true_e[usable] <= ON_HULL).astype(float)
    normal_ece, normal_bins = reliability(normal[usable], observed)
    ece, bins = reliability(probability[usable], observed)
    by_prediction = where_it_misses(report_e[usable], true_e[usable], report_spread[usable])
    true_e, pred_e = true_e[ok], pred_e[ok]
    lines = [
        "| quantity | value |",
        "|---|---|",
        f"| test compounds on the training hull | {int(ok.sum()):,} of {len(test):,} |",
        f"| formation energy MAE of the surrogate | {np.abs(predicted - test.y)[ok].mean():.3f} eV/atom |",
        f"| e_above_hull MAE (predicted vs true energies) | {np.abs(pred_e - true_e).mean():.3f} eV/atom |",
        f"| stable by true energies (e ≤ 0) | {np.mean(true_e <= 0):.3f} |",
    ]
    for name, limit in (("stable (e ≤ 0)", 0.0), ("near-stable (e ≤ 0.1)", 0.1)):
        p, r, f = scores(true_e <= limit, pred_e <= limit)
        lines.append(f"| {name}: precision / recall / F1 | {p:.3f} / {r:.3f} / {f:.3f} |")

    train_generator = stoichgen.Generator.default(hull=hull)
    retro = retrospective(split, truth, hull, train_generator, args.systems, args.seed)

    # speed: a 5-element system's first diagram; 256 guided candidates' hull columns, warm
    started = time.perf_counter()
    hull.diagram(frozenset({"Li", "Mn", "Fe", "P", "O"}))
    first_five = time.perf_counter() - started
    generator = stoichgen.Generator.default()
    frame = generator.generate(-2.0, n=256, seed=0)
    started = time.perf_counter()
    for formula, mean in zip(frame["formula"], frame["predicted_property"], strict=True):
        generator.hull.query(formula, mean)
    warm = time.perf_counter() - started
    lines += [
        f"| first diagram of a 5-element system (Li-Mn-Fe-P-O) | {first_five:.2f} s |",
        f"| hull columns of 256 guided candidates, warm | {warm:.2f} s |",
        f"| e_above_hull of all test compounds, twice | {seconds:.1f} s |",
    ]
    text = "\n\n".join([
        "# Stability: honest evaluation",
        f"Made by `python {' '.join(sys.argv)}` on {cpu()}, 2 cores. Split 0 of the bundled MP set: the "
        "hull of the training split's compounds (every element at 0), the test split's compounds placed on "
        "it with their true formation energies and with the bundled surrogate's predictions.",
        "\n".join(lines),
        "Against a fixed hull of known compounds, e_above_hull moves one for one with the candidate's own "
        "formation energy, so its MAE equals the surrogate's formation-energy MAE. What a small error does "
        "not give (Bartel et al. 2020) is the stability call: the precision and recall above are what a "
        "screen by e_above_hull ≤ 0 or ≤ 0.1 gets. Not measured here: hulls rebuilt from predicted energies "
        "of the competing phases too, which is where Bartel et al. found errors do not cancel.",
        "## Is p_stable a probability?",
        f"Each of the {int(usable.sum()):,} test-split compounds gets `p_stable` from the reporting members' "
        "mean and calibrated spread on the training split's hull; observed: whether it truly lies on or "
        "below that hull. Binned predicted against observed, expected calibration error (target ≤ 0.05): "
        f"the normal error model alone **{normal_ece:.3f}**; recalibrated, as `generate` and `screen` report "
        f"it, **{ece:.3f}**.",
        "\n".join(["| normal model | compounds | mean p | observed stable share |", "|---|---|---|---|"]
                  + normal_bins),
        "The normal model misses in the outer bins. Real compounds sit near the hull, so a held-out compound "
        "predicted well below it is, more often than the normal spread says, in truth closer to it, and one "
        "predicted well above it is closer too (the errors also have heavier tails than a normal: 12 % of "
        "them exceed three calibrated σ). A Student-t of 2 to 6 degrees of freedom scaled to the same 68 % "
        "quantile, or the calibration rows' own error distribution, did not lower the error (0.061 to "
        "0.088). What does: an isotonic map from the normal model's probability to the observed share "
        "(Zadrozny & Elkan 2002; Kuleshov et al. 2018), fitted on the surrogate run's calibration rows (5 % "
        "of the training split that no member trained on) placed on the hull of the other training "
        "compounds: no test-split compound is used (`predict.StabilityCalibration`, stored beside the "
        "checkpoint as `p_stable.json`). It is monotone, so no ranking changes.",
        "\n".join(["| recalibrated | compounds | mean p | observed share |", "|---|---|---|---|", *bins]),
        "By predicted e_above_hull (reporting members), the pull toward the hull:",
        "\n".join(by_prediction),
        "## Retrospective discovery: does the search find what was held out?",
        "The hull and the surrogate know the training split only (`Generator.default(hull=Hull(training "
        "compounds))`, what `--reference train.csv` gives on the command line); the test split's compounds "
        "that lie on or below that hull are the discoveries. For each sampled chemical system: "
        "`generate --objective stability --elements SYSTEM -n 50` (guided, default options), and the "
        "substitution baseline (every training compound carried into the system by replacing each element "
        f"with itself or one of its {SUBSTITUTES} likeliest ion substitutes, ranked by the same surrogate's "
        "predicted e_above_hull). Recall@k: the share of the discoveries found in a method's first k rows.",
        "\n\n".join([retro[0], "\n".join(retro[1:])]),
        (
            "What it says: the substitution baseline finds about twice as many of the held-out stable "
            "compounds as the guided search does, at both depths. Both are ranked by the same surrogate; "
            "they differ in what they rank. Substitution carries known stoichiometries into the system "
            "(Li2FeO3, Mn5Si3, Ba2TiO4 come back), while the guided search ranks the system's whole "
            "candidate space, where the surrogate rates many formulas no known compound resembles at or "
            "below the hull (Li-Fe-O: FeO4, FeO6, Li10Fe among its first twelve). The common oxidation table "
            "alone does not change that (0.27 against 0.25 at 50). For stable compounds within a chemical "
            "system, start from substitution of known compounds; the guided search's strength is hitting a "
            "property target ([the discovery benchmark](../discovery/benchmark.md)), not this."
        ),
    ])  # fmt: skip
    if args.picture:
        system = generator.generate(-1.5, n=12, seed=0, elements="Li,Mn,O")
        plot_hull(generator.hull, list(system["formula"]), list(system["predicted_property"]), args.picture)
        link = Path("..") / Path(args.picture).parent.name / Path(args.picture).name
        text += (
            f"\n\n![Li-Mn-O hull with 12 guided candidates at -1.5 eV/atom]({link})\n\nThe same picture: "
            "`stoichgen generate --target -1.5 -n 12 --elements Li,Mn,O -o c.csv && stoichgen hull c.csv "
            "--plot hull.png` (candidates highlighted)."
        )
    publish(text, args.out)


if __name__ == "__main__":
    main()
