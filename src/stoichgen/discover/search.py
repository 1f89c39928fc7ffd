"""Guided search: small integer formulas, valid by construction, ranked by a surrogate's mean and spread.

The search space is ``space.candidate_counts`` under the search's ``Rule`` (by default ``space.SMACT``:
exactly neutral for one oxidation state per element from SMACT's ICSD-derived table with cations less
electronegative than anions, or made of metals only, an intermetallic that SMACT accepts as an alloy),
over at most ``max_elements`` elements and ``max_atoms`` atoms per formula unit. Formulas are built
per element set, never filtered out of random vectors, and checked once more with SMACT's own
``smact_validity`` before they are returned.

The search walks over element sets. It starts from four kinds of starting set (``source``):
- ``generator``: the element sets of a generative model's samples at the target;
- ``substitution``: training compounds whose property is near the target, one element replaced by a
  likely substitute (pymatgen's offline ion-substitution probabilities);
- ``system``: every element set of a small chemical system (at most 12 allowed elements);
- ``random``: 2-4 elements drawn with the training split's element frequencies;
and then, for a few rounds, moves from the best sets (``move``): substitute one element, add one, remove
one. Every formula of every set visited is ranked by ``space.score`` (lower is better), so a candidate
ranks high when the surrogate predicts it on target, is confident about it, and its chemistry resembles
known compounds. At most ``PER_SET`` formulas of one element set are returned.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from stoichgen.chem.hull import Hull
from stoichgen.chem.validity import smact_valid
from stoichgen.space.assign import assign, oxidation_text, rarity
from stoichgen.space.formulas import (
    DEFAULT_MAX_ATOMS,
    SMACT,
    Rule,
    candidate_counts,
    formula_text,
    fraction_keys,
    rule_accepts,
)
from stoichgen.space.score import Chemistry, first_term, score, substitutes

__all__ = ["DEFAULT_MAX_ATOMS", "DEFAULT_MAX_ELEMENTS", "Candidate", "Search", "SetScores"]

PER_SET = 3
SCORED_PER_SET = 256  # the smallest formula units of a set that are scored (realism, and speed)
DEFAULT_MAX_ELEMENTS = 4
ROUNDS = 3
BEAM = 16  # element sets moved from per round
SOURCES = ("generator", "substitution", "system", "random", "move")


# --- the search ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    elements: tuple[str, ...]
    counts: tuple[int, ...]
    mean: float
    spread: float
    score: float
    source: str
    states: tuple[int, ...] = ()  # the most likely neutral oxidation state per element; () for an alloy
    probability: float = math.nan  # its likelihood (space.assign); NaN for an alloy

    @property
    def formula(self) -> str:
        return formula_text(self.elements, self.counts)

    @property
    def oxidation_states(self) -> str:
        return oxidation_text(self.elements, np.array(self.states)) if self.states else ""


@dataclass(frozen=True)
class SetScores:
    """Every valid formula of one element set with the surrogate's mean and spread, target-independent."""

    counts: np.ndarray  # (M, k)
    mean: np.ndarray  # (M,)
    spread: np.ndarray  # (M,)
    novel: np.ndarray  # (M,) bool
    pair_penalty: float
    e_hull: np.ndarray | None = None  # (M,) predicted e_above_hull, with the stability objective
    states: np.ndarray | None = None  # (M, k) the most likely neutral assignment (zeros: an alloy)
    probability: np.ndarray | None = None  # (M,) its likelihood, NaN for an alloy
    rarity: np.ndarray | float = 0.0  # (M,) what the score charges for unusual chemistry


class Search:
    """The guided search for one surrogate, chemistry and constraint set; caches every set it scores, so
    later targets reuse earlier work.

    ``predict(fractions (M, V)) -> (mean (M,), spread (M,))``; ``allowed`` the symbols a candidate may
    hold, ``required`` those it must hold.
    """

    def __init__(
        self,
        predict,
        chemistry: Chemistry,
        allowed: frozenset[str],
        required: tuple[str, ...] = (),
        max_elements: int = DEFAULT_MAX_ELEMENTS,
        max_atoms: int = DEFAULT_MAX_ATOMS,
        include_known: bool = False,
        hull: Hull | None = None,
        rule: Rule = SMACT,
        target_range: tuple[float, float] | None = None,
    ) -> None:
        self.predict = predict
        self.chemistry = chemistry
        self.allowed = frozenset(s for s in allowed if s in chemistry.symbols)
        self.required = tuple(required)
        self.max_elements = max_elements
        self.max_atoms = max_atoms
        self.include_known = include_known
        self.hull = hull  # given: the stability objective (minimise predicted e_above_hull)
        self.rule = rule
        self.target_range = target_range  # given: rank by 1 - the probability of lying in it, not a target
        self.scored: dict[tuple[str, ...], SetScores] = {}

    # -- element sets --------------------------------------------------------------------------------------

    def admissible(self, elements: Sequence[str]) -> tuple[str, ...] | None:
        """The set with the required elements added, in vocabulary order, or None if it cannot satisfy
        the constraints."""
        chosen = set(elements) | set(self.required)
        if not chosen <= self.allowed or not 2 <= len(chosen) <= self.max_elements:
            return None
        return tuple(sorted(chosen, key=self.chemistry.index))

    def random_sets(self, rng: np.random.Generator, n: int) -> list[tuple[str, ...]]:
        """Element sets of 2, 3 or 4 elements (probabilities 1/4, 1/2, 1/4) drawn with the training
        split's element frequencies, among the allowed elements."""
        pool = [s for s in self.chemistry.symbols if s in self.allowed]
        weights = np.array([self.chemistry.frequency[self.chemistry.index(s)] for s in pool]) + 1e-6
        weights /= weights.sum()
        out = []
        for _ in range(n):
            size = int(rng.choice([2, 3, 4], p=[0.25, 0.5, 0.25]))
            size = min(size, len(pool), self.max_elements)
            picked = self.admissible(list(rng.choice(pool, size=size, replace=False, p=weights)))
            if picked is not None:
                out.append(picked)
        return out

    def substitution_sets(self, target: float, n_compounds: int = 40) -> list[tuple[str, ...]]:
        """Training compounds nearest the target (with no target, the most strongly bound ones) with one
        element swapped for a likely substitute."""
        key = self.chemistry.y if math.isnan(target) else np.abs(self.chemistry.y - target)
        nearest = np.argsort(key, kind="stable")[:n_compounds]
        out = []
        for row in nearest:
            elements = self.chemistry.sets[row]
            for i, symbol in enumerate(elements):
                for other in substitutes(symbol):
                    if other not in elements:
                        picked = self.admissible([*elements[:i], other, *elements[i + 1 :]])
                        if picked is not None:
                            out.append(picked)
        return out

    def system_sets(self, limit: int = 12) -> list[tuple[str, ...]]:
        """Every admissible element set when at most ``limit`` elements are allowed (a chemical system)."""
        pool = sorted(self.allowed, key=self.chemistry.index)
        if len(pool) > limit:
            return []
        sets = (self.admissible(c) for k in range(2, self.max_elements + 1) for c in combinations(pool, k))
        return list(dict.fromkeys(s for s in sets if s is not None))

    def moves(self, elements: tuple[str, ...]) -> list[tuple[str, ...]]:
        """Neighbouring sets: one element substituted, one added (a frequent partner), one removed."""
        out = []
        for i, symbol in enumerate(elements):
            for other in substitutes(symbol, 3):
                if other not in elements:
                    out.append([*elements[:i], other, *elements[i + 1 :]])
            if len(elements) > 2:
                out.append([*elements[:i], *elements[i + 1 :]])
        together = self.chemistry.together[[self.chemistry.index(s) for s in elements]].all(axis=0)
        partners = np.flatnonzero(together) if len(elements) < self.max_elements else []
        ranked = sorted(partners, key=lambda j: -self.chemistry.frequency[j])
        symbols = self.chemistry.symbols
        out += [[*elements, symbols[j]] for j in ranked if symbols[j] not in elements][:3]
        return [p for p in (self.admissible(m) for m in out) if p is not None]

    # -- scoring -------------------------------------------------------------------------------------------

    def score_sets(self, sets: Sequence[tuple[str, ...]]) -> None:
        """Score every valid formula of the sets not scored yet (one surrogate call for all)."""
        todo = [s for s in dict.fromkeys(sets) if s not in self.scored]
        blocks, owners = [], []
        for elements in todo:
            counts = candidate_counts(elements, self.max_atoms, self.rule)[:SCORED_PER_SET]
            if not len(counts):
                empty = np.zeros(0)
                self.scored[elements] = SetScores(counts, empty, empty, empty.astype(bool), 0.0, empty,
                                                  counts, empty, empty)  # fmt: skip
                continue
            x = np.zeros((len(counts), len(self.chemistry.symbols)))
            cols = [self.chemistry.index(s) for s in elements]
            x[:, cols] = counts / counts.sum(axis=1, keepdims=True)
            blocks.append(x)
            owners.append((elements, counts))
        if not blocks:
            return
        x = np.vstack(blocks)  # (M, V)
        mean, spread = self.predict(x)
        known = self.chemistry.known
        novel = np.array([key not in known for key in fraction_keys(x)], dtype=bool)
        start = 0
        for elements, counts in owners:
            rows = slice(start, start + len(counts))
            idx = [self.chemistry.index(s) for s in elements]
            unseen = self.chemistry.unseen_pairs(elements)
            e_hull = None
            if self.hull is not None:
                # where the known hull is silent (a pair of elements no known compound holds), every
                # bound composition would sit far "below" it: a gap in the data, not a stable phase,
                # so such sets are not proposed
                e_hull = np.full(len(counts), np.inf)
                if self.hull.pairs_covered(frozenset(elements)):
                    e_hull = self.hull.e_above_hull_many(elements, x[rows][:, idx], mean[rows])
            states, probability = assign(elements, counts, self.rule)
            self.scored[elements] = SetScores(counts, mean[rows], spread[rows], novel[rows], unseen, e_hull,
                                              states, probability, rarity(probability, elements, self.rule))
            start += len(counts)

    def _objective(self, scores: SetScores, target: float) -> np.ndarray:
        first = first_term(scores.mean, target, scores.e_hull, scores.spread, self.target_range)
        # a range's probability already prices the spread in: not charged twice
        spread = scores.spread if self.target_range is None else np.zeros_like(scores.spread)
        return score(
            first, spread, scores.pair_penalty, scores.counts.sum(axis=1), scores.counts.shape[1],
            scores.rarity,
        )  # fmt: skip

    def best_of(self, elements: tuple[str, ...], target: float) -> float:
        scores = self.scored[elements]
        usable = scores.novel | self.include_known
        return float(self._objective(scores, target)[usable].min()) if usable.any() else math.inf

    # -- the walk ------------------------------------------------------------------------------------------

    def find(self, target: float, n: int, starts: dict[tuple[str, ...], str]) -> list[Candidate]:
        """The ``n`` best candidates at ``target`` (fewer if the space holds fewer), best first, walking
        from the starting sets (each labelled with its source)."""
        origin = dict(starts)
        self.score_sets(list(origin))
        frontier = list(origin)
        for _ in range(ROUNDS):
            ranked = sorted(frontier, key=lambda s: self.best_of(s, target))[:BEAM]
            fresh = []
            for elements in ranked:
                for moved in self.moves(elements):
                    if moved not in origin:
                        origin[moved] = "move"
                        fresh.append(moved)
            if not fresh:
                break
            self.score_sets(fresh)
            frontier = ranked + fresh
        return self._pick(target, n, origin)

    def _ranked(
        self, target: float, origin: dict[tuple[str, ...], str], per_set: int | None
    ) -> list[Candidate]:
        """The best ``per_set`` usable formulas of every set visited (None: all), best first."""
        rows = []
        for elements, source in origin.items():
            scores = self.scored[elements]
            objective = self._objective(scores, target)
            usable = np.flatnonzero(scores.novel | self.include_known)
            for i in usable[np.argsort(objective[usable], kind="stable")][:per_set]:
                counts = tuple(int(c) for c in scores.counts[i])
                mean, spread = float(scores.mean[i]), float(scores.spread[i])
                states = tuple(int(q) for q in scores.states[i]) if scores.states[i].any() else ()
                rows.append(Candidate(elements, counts, mean, spread, float(objective[i]), source, states,
                                      float(scores.probability[i])))  # fmt: skip
        return sorted(rows, key=lambda c: (c.score, c.formula))

    def _pick(self, target: float, n: int, origin: dict[tuple[str, ...], str]) -> list[Candidate]:
        rows = self._ranked(target, origin, PER_SET)
        if len(rows) < 2 * n:  # a small space: more formulas per element set rather than too few rows
            rows = self._ranked(target, origin, None)
        chosen: list[Candidate] = []
        # belt and braces: the rule itself once more (for SMACT's rule, SMACT's own check)
        head = rows[: 4 * n]
        if self.rule == SMACT:
            valid = smact_valid([c.formula for c in head]).tolist()
        else:
            valid = [bool(rule_accepts(c.elements, np.array([c.counts]), self.rule)[0]) for c in head]
        for candidate, ok in zip(head, valid, strict=True):
            if ok:
                chosen.append(candidate)
            if len(chosen) == n:
                break
        return chosen
