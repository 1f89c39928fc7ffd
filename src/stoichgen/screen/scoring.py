"""Scoring a chunk of a screen, as the guided search scores its candidates: ``Scorer``.

The surrogate's mean and spread, SMACT validity (for enumerated formulas by ``space.rule_accepts`` under
``space.SMACT``, the same rule as SMACT's ``smact_validity``, tested against it),
known (in the surrogate's data set) or new, the nearest known compound (``NearestIndex.query_within``),
``e_above_hull`` against the known hull, and the guided search's score. One thread per chunk, so the
numbers do not depend on the backend or on the worker's cores.

>>> from stoichgen.screen.plan import ScreenSpec, plan
>>> spec = ScreenSpec(elements=("Li", "O", "F"), max_atoms=8, target=-2.0)
>>> frame = Scorer.default().score(spec, plan(spec)[0])
>>> frame[["formula", "oxidation_states", "known"]].head(3).values.tolist()
[['Li2O', 'Li+ O2-', True], ['LiF', 'Li+ F-', True], ['Li3OF', 'Li+ O2- F-', False]]
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from threadpoolctl import threadpool_limits

from stoichgen.chem.composition import parse_formula
from stoichgen.chem.hull import p_stable
from stoichgen.chem.validity import smact_valid_guarded
from stoichgen.errors import FormulaError
from stoichgen.nearest import NearestIndex
from stoichgen.predict import DEFAULT_SURROGATE, Surrogate
from stoichgen.run import bundled_run_dir
from stoichgen.schema import ERROR_COLUMN, SCREEN_COLUMNS, Column
from stoichgen.screen.plan import Chunk, ScreenError, ScreenSpec
from stoichgen.space.assign import TABLES, assign, oxidation_text, rarity
from stoichgen.space.formulas import SMACT, candidate_counts, formula_text, fraction_keys, rule_accepts
from stoichgen.space.score import Chemistry, first_term, hull_of, score

__all__ = ["ERROR_COLUMN", "SCREEN_COLUMNS", "Scorer", "check_spec", "top_rows"]



@functools.cache
def _surrogate(run_dir: str) -> Surrogate:
    """A surrogate run ("" for the bundled one), loaded once per process."""
    return Surrogate.from_run(run_dir or bundled_run_dir(DEFAULT_SURROGATE))


def check_spec(spec: ScreenSpec) -> Surrogate:
    """The spec's surrogate, after refusing what it cannot score (loads only the surrogate, fast)."""
    surrogate = _surrogate(spec.surrogate)
    vocabulary = surrogate.vocabulary
    outside = [s for s in spec.elements if s not in vocabulary]
    if outside:
        raise ScreenError(f"elements {', '.join(outside)} are not in the surrogate's vocabulary of "
                          f"{len(vocabulary)} elements", field="elements")  # fmt: skip
    if spec.objective == "stability" and surrogate.record.data.csv is not None:
        raise ScreenError("the stability objective needs a surrogate of the bundled formation energies",
                          field="objective")  # fmt: skip
    return surrogate


class Scorer:
    """What scoring needs, loaded once per process: the surrogate, its data set (known formulas, the
    nearest-compound index, the hull) and the training split's chemistry (the score's pair term)."""

    def __init__(self, surrogate: Surrogate):
        self.surrogate = surrogate
        record = surrogate.record
        dataset = record.load_data()
        train = record.load_split(dataset).train
        self.vocabulary = surrogate.vocabulary
        self.chemistry = Chemistry.from_fractions(self.vocabulary.symbols, train.x_b(), train.y)
        x_b = dataset.x_b()
        self.known = frozenset(fraction_keys(x_b))
        self.nearest = NearestIndex(x_b, record.normaliser, y=dataset.y)
        self.formulas = np.asarray(dataset.frame["reduced_formula"], dtype=object)
        self.hull = hull_of(dataset) if record.data.csv is None else None  # MP formation energies

    @classmethod
    @functools.cache
    def from_run(cls, run_dir: str) -> Scorer:
        """The scorer of a surrogate run ("" for the bundled one), cached per process."""
        return cls(_surrogate(run_dir))

    @classmethod
    def default(cls) -> Scorer:
        return cls.from_run("")

    def score(self, spec: ScreenSpec, chunk: Chunk) -> pd.DataFrame:
        """The chunk's rows (``SCREEN_COLUMNS``, plus ``error`` for candidates), in order. One thread, so
        that the numbers do not depend on the backend or on how many cores the worker has."""
        with threadpool_limits(1), _torch_threads(1):
            if spec.candidates:
                return self._score_candidates(spec, spec.candidates[chunk.start : chunk.stop])
            parts = []
            for piece in chunk.pieces:
                every = candidate_counts(piece.elements, spec.max_atoms, TABLES[spec.oxidation])
                counts = every[piece.start : piece.stop]  # (M, k)
                smact = rule_accepts(piece.elements, counts, SMACT)
                parts.append(self._score_set(spec, piece.elements, counts.astype(float), smact, None))
            return _concat(parts, SCREEN_COLUMNS)

    def p_stable(self, e_hull: np.ndarray, spread: np.ndarray) -> np.ndarray:
        """P(at or below the hull), recalibrated as generate's (``Surrogate.stability_calibration``)."""
        if self.hull is None:
            return np.full(len(e_hull), np.nan)
        return self.surrogate.stability_calibration.apply(p_stable(e_hull, spread))

    def _score_set(self, spec: ScreenSpec, elements: tuple[str, ...], counts: np.ndarray,
                   smact: np.ndarray, formulas: list[str] | None) -> pd.DataFrame:  # fmt: skip
        """Rows of one element set: ``counts`` (M, k) in the order of ``elements``."""
        cols = [self.vocabulary.index(s) for s in elements]
        atoms = counts.sum(axis=1)
        fractions = counts / atoms[:, None]  # (M, k)
        x = np.zeros((len(counts), len(self.vocabulary)))  # (M, V)
        x[:, cols] = fractions
        # ranked by some members, reported by the others (predict.MemberSplit: the winner's curse)
        each = self.surrogate.members_fractions(x)  # (K, M)
        mean, spread = self.surrogate.member_split.estimate(each, "select")
        reported, reported_spread = self.surrogate.member_split.estimate(each, "report")
        e_hull = np.full(len(x), np.nan)
        if self.hull is not None:
            e_hull = self.hull.e_above_hull_many(elements, fractions, mean)
        hull_term = None
        if spec.objective == "stability":
            hull_term = e_hull if self.hull.pairs_covered(frozenset(elements)) else np.full(len(x), np.inf)
        first = first_term(mean, spec.target, hull_term)
        distance, nearest = self.nearest.query_within(cols, fractions)
        rule = TABLES[spec.oxidation]
        states, probability = assign(elements, counts.astype(np.int64), rule)  # (M, k), (M,)
        neutral = ~np.isnan(probability)  # an assignment of the run's table: neutral, as in generate
        if formulas is None:
            formulas = [formula_text(elements, c) for c in counts.astype(np.int64)]
        return pd.DataFrame({
            "formula": formulas,
            "system": "-".join(sorted(elements)),
            "n_elements": len(elements),
            "n_atoms": atoms,
            "predicted_property": reported,
            "uncertainty": reported_spread,
            "e_above_hull": e_hull + reported - mean,  # the hull is fixed: it moves with the energy
            "p_stable": self.p_stable(e_hull + reported - mean, reported_spread),
            "score": score(first, spread, self.chemistry.unseen_pairs(elements), atoms, len(elements),
                           rarity(probability, elements, rule)),
            "charge_neutral": neutral,
            "oxidation_states": [oxidation_text(elements, s) for s in states],
            "oxidation_probability": probability,
            "smact_valid": smact,
            "known": [key in self.known for key in fraction_keys(x)],
            "nearest_formula": self.formulas[nearest],
            "nearest_property": self.nearest.y[nearest],
            "nearest_distance": distance,
        })  # fmt: skip

    def _score_candidates(self, spec: ScreenSpec, formulas: Sequence[str]) -> pd.DataFrame:
        """A user's formulas, grouped by element set for the work, returned in their order; rows that
        cannot be scored keep their place with the reason in ``error``."""
        groups: dict[tuple[str, ...], list[tuple[int, np.ndarray]]] = {}
        errors = [""] * len(formulas)
        for row, text in enumerate(formulas):
            try:
                comp = parse_formula(str(text)).reduced_composition
            except FormulaError as err:
                errors[row] = str(err)
                continue
            symbols = [el.symbol for el in comp]
            unknown = [s for s in symbols if s not in self.vocabulary]
            if unknown:
                errors[row] = f"{', '.join(unknown)} not in the surrogate's vocabulary"
                continue
            elements = tuple(sorted(symbols, key=self.vocabulary.index))
            groups.setdefault(elements, []).append((row, np.array([comp[e] for e in elements])))
        parts, order = [], []
        for elements, members in groups.items():
            rows = [row for row, _ in members]
            texts = [str(formulas[row]) for row in rows]
            counts = np.vstack([c for _, c in members]).astype(float)
            parts.append(self._score_set(spec, elements, counts, np.array(smact_valid_guarded(texts)), texts))
            order += rows
        bad = [row for row, reason in enumerate(errors) if reason]
        if bad:
            blank = pd.DataFrame({"formula": [str(formulas[row]) for row in bad]})
            parts.append(blank)
            order += bad
        frame = _concat(parts, SCREEN_COLUMNS)
        frame.index = order
        frame = frame.sort_index().reset_index(drop=True)
        frame["error"] = errors
        return frame


class _torch_threads:
    """``torch.set_num_threads(n)`` for a block (process-wide; workers score one chunk at a time)."""

    def __init__(self, n: int):
        self.n, self.before = n, torch.get_num_threads()

    def __enter__(self) -> None:
        torch.set_num_threads(self.n)

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.before)


def _concat(parts: list[pd.DataFrame], columns: tuple[Column, ...]) -> pd.DataFrame:
    """Parts in order with the schema's columns and dtypes (missing values: NaN, False, "", 0)."""
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    out = {}
    for c in columns:
        values = frame[c.name] if c.name in frame else pd.Series([np.nan] * len(frame))
        if c.dtype is bool:
            values = values.fillna(False).astype(bool)
        elif c.dtype is object:
            values = values.fillna("").astype(object)
        elif np.dtype(c.dtype).kind == "i":
            values = values.fillna(0)
        out[c.name] = np.asarray(values, dtype=c.dtype)
    return pd.DataFrame(out)


def top_rows(frame: pd.DataFrame, top: int | None) -> pd.DataFrame:
    """The best ``top`` rows by score, ties in their given order (None: all, as given)."""
    if top is None:
        return frame
    return frame.sort_values("score", kind="stable", na_position="last").head(top)
