"""The discovery benchmark of ``../shared/EVALUATION.md``: methods and baselines at the same targets and
budget, judged by a model none of them uses (``evaluate.judge``); run by ``benchmarks/bench_discovery.py``.

Methods: ``paper`` (bundled CondGAN(x^bp), TH 0.03, MH), ``paper+exact`` (exact balancing), ``screen``
(100,000 random neutral formulas ranked by the surrogate), ``substitute`` (ion substitution of training
compounds near the target, ranked by the surrogate) and ``guided`` (``discover.search``). Everything a
method uses comes from the training split of split 0.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pymatgen.core import Composition, Element

from stoichgen.chem.composition import Vocabulary, formula_fractions
from stoichgen.chem.oxidation import oxidation_states
from stoichgen.chem.validity import smact_valid_guarded
from stoichgen.data import Split
from stoichgen.evaluate.judge import Judge
from stoichgen.evaluate.metrics import Generates
from stoichgen.space.formulas import NEUTRAL, formula_text, fraction_keys, rule_accepts
from stoichgen.space.score import substitutes

TABLE5_TARGETS = (-4.49, -3.76, -3.45, -3.01, -2.50, -2.03, -1.52, -1.07, -0.48, -0.01)
SCREEN_POOL = 100_000
METHODS = ("paper", "paper+exact", "screen", "substitute", "guided")
# the guided search's oxidation tables beside its default (icsd, ranked by likelihood): the trade in view
TABLE_METHODS = ("guided:common", "guided:all")


@dataclass(frozen=True)
class Known:
    """Reduced-formula keys of the training split, the test split and the whole data set."""

    train: frozenset[bytes]
    test: frozenset[bytes]

    @classmethod
    def from_split(cls, split: Split) -> Known:
        return cls(frozenset(fraction_keys(split.train.x_b())), frozenset(fraction_keys(split.test.x_b())))


# --- baselines ----------------------------------------------------------------------------------------------


def _neutral_common(elements: tuple[str, ...], counts: np.ndarray) -> np.ndarray:
    """Rows of counts (M, k) neutral for one pymatgen common oxidation state per element (the candidate
    space's ``NEUTRAL`` rule); rows with fractional amounts are not. (M,)."""
    counts = np.asarray(counts, dtype=float)
    whole = np.isclose(counts, np.round(counts)).all(axis=1)
    return whole & rule_accepts(tuple(elements), np.round(counts).astype(np.int64), NEUTRAL)


def screen_pool(split: Split, known: Known, seed: int = 0, size: int = SCREEN_POOL) -> list[str]:
    """EVALUATION.md's screen: 2, 3 or 4 elements (1/4, 1/2, 1/4) drawn with the training split's element
    frequencies, counts 1..8 (divided by their gcd), neutral for some choice of common states, not in the
    training split; ``size`` distinct formulas."""
    vocabulary = split.train.vocabulary
    frequency = (split.train.x_b() > 0).mean(axis=0) + 1e-9
    frequency /= frequency.sum()
    rng = np.random.default_rng(seed)
    pool: dict[bytes, str] = {}
    attempts = 0
    while len(pool) < size and attempts < 200 * size:
        batch = 4096
        attempts += batch
        sizes = rng.choice([2, 3, 4], size=batch, p=[0.25, 0.5, 0.25])
        for k in sizes:
            cols = np.sort(rng.choice(len(vocabulary), size=k, replace=False, p=frequency))
            counts = rng.integers(1, 9, size=(1, k))
            counts //= np.gcd.reduce(counts, axis=1, keepdims=True)
            elements = tuple(vocabulary.symbols[c] for c in cols)
            if not _neutral_common(elements, counts)[0]:
                continue
            x = np.zeros((1, len(vocabulary)))
            x[0, cols] = counts[0] / counts.sum()
            key = fraction_keys(x)[0]
            if key not in known.train and key not in pool:
                pool[key] = formula_text(elements, counts[0])
            if len(pool) >= size:
                break
    return list(pool.values())


def substitute_candidates(split: Split, known: Known, target: float, n_compounds: int = 200) -> list[str]:
    """Training compounds nearest the target with one or two elements replaced by likely substitutes,
    kept when neutral for common states and not in the training split."""
    train = split.train
    nearest = np.argsort(np.abs(train.y - target))[:n_compounds]
    out: dict[bytes, str] = {}
    vocabulary = train.vocabulary
    for row in nearest:
        amounts = train.frame["composition"].iloc[row].get_el_amt_dict()
        elements = tuple(amounts)
        variants = []
        for i, a in enumerate(elements):
            for sa in substitutes(a, 3):
                one = list(elements)
                one[i] = sa
                variants.append(one)
                for j in range(i + 1, len(elements)):
                    for sb in substitutes(elements[j], 2):
                        two = list(one)
                        two[j] = sb
                        variants.append(two)
        counts = np.array([[amounts[e] for e in elements]])
        for variant in variants:
            if len(set(variant)) < len(variant) or any(v not in vocabulary for v in variant):
                continue
            if not _neutral_common(tuple(variant), counts)[0]:
                continue
            x = np.zeros((1, len(vocabulary)))
            x[0, [vocabulary.index(v) for v in variant]] = counts[0] / counts.sum()
            key = fraction_keys(x)[0]
            if key not in known.train:
                out.setdefault(key, formula_text(variant, counts[0]))
    return list(out.values())


def rank_by_surrogate(generator: Generates, formulas: Sequence[str], target: float, n: int) -> list[str]:
    if not formulas:
        return []
    mean, _ = generator.surrogate.predict_fractions_with_spread(
        formula_fractions(formulas, generator.vocabulary)
    )
    return [formulas[i] for i in np.argsort(np.abs(mean - target), kind="stable")[:n]]


# --- metrics ------------------------------------------------------------------------------------------------


def _neutral_or_metal(formula: str) -> tuple[bool, bool]:
    """(neutral for one pymatgen common state per element, metals only), computed from pymatgen's tables."""
    comp = Composition(formula)
    elements = tuple(el.symbol for el in comp)
    metals = all(Element(e).is_metal for e in elements)
    counts = comp.get_el_amt_dict()
    amounts = np.array([[counts[e] for e in elements]])
    if len(elements) > 8 or np.prod([max(1, len(oxidation_states(e, "common"))) for e in elements]) > 10**6:
        return False, metals
    return bool(_neutral_common(elements, amounts)[0]), metals


def measure(rows: pd.DataFrame, judge: Judge, known: Known, vocabulary: Vocabulary) -> dict[str, float]:
    """EVALUATION.md's metrics over candidate rows (columns target, formula)."""
    formulas = rows["formula"].tolist()
    x = formula_fractions(formulas, vocabulary)
    error = np.abs(judge.predict_fractions(x) - rows["target"].to_numpy())
    keys = fraction_keys(x)
    first = ~pd.Series(keys).groupby(rows["target"].to_numpy()).transform(lambda s: s.duplicated()).to_numpy()
    novel = np.array([k not in known.train and k not in known.test for k in keys])
    rediscovered = np.array([k in known.test and k not in known.train for k in keys])
    valid = np.array(smact_valid_guarded(formulas))
    neutral_metal = [_neutral_or_metal(f) for f in formulas]
    comps = [Composition(f) for f in formulas]
    atoms = np.array([c.get_reduced_composition_and_factor()[0].num_atoms for c in comps])
    return {
        "rows": len(rows),
        "judge MAE": float(error.mean()),
        "hit ≤0.1": float((error <= 0.1).mean()),
        "hit ≤0.2": float((error <= 0.2).mean()),
        "neutral or metal": float(np.mean([a or b for a, b in neutral_metal])),
        "SMACT valid": float(valid.mean()),
        "unique": float(first.mean()),
        "novel": float(novel.mean()),
        "rediscovered": float(rediscovered.mean()),
        # what a method says of its own rows (guided: predicted_property) against the judge; NaN for
        # methods that report no property
        "reported error": _reported_error(rows, judge, x),
        "VUN-hit": float((first & (novel | rediscovered) & valid & (error <= 0.2)).mean()),
        "elements": float(np.mean([len(c) for c in comps])),
        "atoms median": float(np.median(atoms)),
        "atoms p90": float(np.percentile(atoms, 90)),
    }


def _reported_error(rows: pd.DataFrame, judge: Judge, x: np.ndarray) -> float:
    """Mean |judge − reported property| over rows with a ``reported`` value (NaN when none has one)."""
    if "reported" not in rows:
        return float("nan")
    reported = rows["reported"].to_numpy(dtype=float)
    has = np.isfinite(reported)
    if not has.any():
        return float("nan")
    return float(np.abs(judge.predict_fractions(x[has]) - reported[has]).mean())


# --- the run ------------------------------------------------------------------------------------------------


def run_methods(
    generator: Generates,
    split: Split,
    targets: Sequence[float],
    n: int = 256,
    methods: Sequence[str] = METHODS,
    log: Callable[[str], None] = print,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Candidates of every method at every target: rows (method, target, formula, reported: the property
    the method reports for the row, NaN if none) and seconds per target."""
    known = Known.from_split(split)
    frames, seconds = [], {}
    pool: list[str] | None = None
    for method in methods:
        started = time.perf_counter()
        for target in targets:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if method == "paper":
                    found = generator.generate(target, n, method="paper")["formula"].tolist()
                elif method == "paper+exact":
                    found = generator.generate(target, n, method="paper", balance="exact")["formula"].tolist()
                elif method == "screen":
                    pool = pool or screen_pool(split, known)
                    found = rank_by_surrogate(generator, pool, target, n)
                elif method == "substitute":
                    found = rank_by_surrogate(
                        generator, substitute_candidates(split, known, target), target, n
                    )
                else:  # "guided", or "guided:TABLE" for another oxidation table (common, icsd, all)
                    table = {"oxidation": method.split(":", 1)[1]} if ":" in method else {}
                    guided = generator.generate(target, n, method="guided", **table)
                    found, reported = guided["formula"].tolist(), guided["predicted_property"].to_numpy()
            if not method.startswith("guided"):
                reported = np.full(len(found), np.nan)
            frames.append(pd.DataFrame({"method": method, "target": float(target), "formula": found,
                                        "reported": reported}))  # fmt: skip
        seconds[method] = (time.perf_counter() - started) / len(targets)
        log(f"{method}: {seconds[method]:.1f} s per target")
    return pd.concat(frames, ignore_index=True), seconds


def table(rows: pd.DataFrame, seconds: dict[str, float], judge: Judge, split: Split) -> pd.DataFrame:
    """One line per method (overall) with every metric and the wall time per target."""
    known = Known.from_split(split)
    lines = []
    for method, part in rows.groupby("method", sort=False):
        lines.append({"method": method, **measure(part, judge, known, split.train.vocabulary),
                      "s / target": seconds.get(method, float("nan"))})  # fmt: skip
    return pd.DataFrame(lines)


def per_target(rows: pd.DataFrame, judge: Judge, split: Split) -> pd.DataFrame:
    known = Known.from_split(split)
    lines = []
    for (method, target), part in rows.groupby(["method", "target"], sort=False):
        m = measure(part, judge, known, split.train.vocabulary)
        kept = {k: m[k] for k in ("judge MAE", "hit ≤0.2", "VUN-hit", "SMACT valid", "rows")}
        lines.append({"method": method, "target": target, **kept})
    return pd.DataFrame(lines)
