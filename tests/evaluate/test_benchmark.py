"""The discovery benchmark's baselines, metrics and loop on a small split, with a judge whose answers we
know (a constant) and a generator that returns what we tell it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Composition
from smact.screening import smact_validity

from stoichgen.data import load_csv, split_dataset
from stoichgen.evaluate.benchmark import (
    Known,
    measure,
    rank_by_surrogate,
    run_methods,
    screen_pool,
    substitute_candidates,
)
from stoichgen.space.formulas import NEUTRAL, rule_accepts


@pytest.fixture(scope="module")
def split(small_csv):
    return split_dataset(load_csv(small_csv), 0)


def _neutral(formula: str) -> bool:
    comp = Composition(formula)
    elements = tuple(el.symbol for el in comp)
    counts = np.array([[int(comp[e]) for e in elements]])
    return bool(rule_accepts(elements, counts, NEUTRAL)[0])


def _key(formula: str, split) -> bytes:
    x = np.zeros((1, len(split.train.vocabulary)))
    comp = Composition(formula).fractional_composition
    for el, amount in comp.items():
        x[0, split.train.vocabulary.index(el.symbol)] = amount
    return np.round(x, 9)[0].tobytes()


def test_screen_pool_is_neutral_new_and_distinct(split):
    known = Known.from_split(split)
    pool = screen_pool(split, known, seed=0, size=300)
    assert len(pool) == 300 and len(set(pool)) == 300
    assert all(_neutral(f) for f in pool)
    assert not {_key(f, split) for f in pool} & known.train
    assert all(2 <= len(Composition(f)) <= 4 for f in pool)
    assert screen_pool(split, known, seed=0, size=300) == pool  # seeded


def test_substitutes_are_neutral_and_new(split):
    known = Known.from_split(split)
    found = substitute_candidates(split, known, target=-2.0, n_compounds=20)
    assert found and all(_neutral(f) for f in found)
    assert not {_key(f, split) for f in found} & known.train


class ConstantJudge:
    def __init__(self, value: float):
        self.value = value

    def predict_fractions(self, x_b: np.ndarray) -> np.ndarray:
        return np.full(len(x_b), self.value)


def test_measure_counts_what_it_says(split):
    known = Known.from_split(split)
    train_formula = split.train.frame["reduced_formula"].iloc[0]
    new = [f for f in screen_pool(split, known, seed=1, size=50) if smact_validity(f)][:2]
    rows = pd.DataFrame({"target": [-1.0] * 4, "formula": [train_formula, *new, new[0]]})
    m = measure(rows, ConstantJudge(-1.15), known, split.train.vocabulary)  # type: ignore[arg-type]
    assert m["rows"] == 4
    assert m["judge MAE"] == pytest.approx(0.15)
    assert m["hit ≤0.1"] == 0.0 and m["hit ≤0.2"] == 1.0
    assert m["unique"] == 0.75  # the fourth row repeats the second
    assert m["novel"] == 0.75  # all but the training compound
    assert m["VUN-hit"] == 0.5  # the two new, valid, first occurrences
    m = measure(rows, ConstantJudge(-5.0), known, split.train.vocabulary)  # type: ignore[arg-type]
    assert m["hit ≤0.2"] == 0.0 and m["VUN-hit"] == 0.0
    assert np.isnan(m["reported error"])  # no method's own estimate given


def test_reported_error_is_judge_against_what_the_method_reports(split):
    known = Known.from_split(split)
    rows = pd.DataFrame({"target": [-1.0] * 3, "formula": ["LiCl", "NaCl", "KCl"],
                         "reported": [-1.0, -1.4, np.nan]})  # fmt: skip
    m = measure(rows, ConstantJudge(-1.15), known, split.train.vocabulary)  # type: ignore[arg-type]
    assert m["reported error"] == pytest.approx((0.15 + 0.25) / 2)  # the row without a report left out


class ScriptedGenerator:
    """Returns the formulas it was given, for each method asked, and ranks by a fixed prediction."""

    def __init__(self, vocabulary, formulas):
        self.vocabulary, self.formulas, self.calls = vocabulary, formulas, []
        self.surrogate = self

    def predict_fractions_with_spread(self, x):
        return x[:, 0] * 0.0 - np.arange(len(x)), np.zeros(len(x))

    def generate(self, target, n=256, *, method="guided", **options):
        self.calls.append((method, options))
        return pd.DataFrame({"formula": self.formulas[:n], "predicted_property": -1.1})


def test_run_methods_asks_each_method_at_each_target(split):
    generator = ScriptedGenerator(split.train.vocabulary, ["LiCl", "NaCl", "KCl"])
    methods = ("paper", "paper+exact", "guided")
    rows, seconds = run_methods(generator, split, [-1.0, -2.0], n=2, methods=methods, log=lambda _: None)
    assert rows.groupby(["method", "target"]).size().tolist() == [2] * 6
    assert (rows.loc[rows["method"] == "guided", "reported"] == -1.1).all()
    assert rows.loc[rows["method"] != "guided", "reported"].isna().all()
    assert ("paper", {"balance": "exact"}) in generator.calls and set(seconds) == set(methods)
    ranked = rank_by_surrogate(generator, ["LiCl", "NaCl", "KCl"], -1.0, 2)  # type: ignore[arg-type]
    assert ranked == ["NaCl", "LiCl"]  # predictions 0, -1, -2 at target -1: NaCl on it, then ties in order
