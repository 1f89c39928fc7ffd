"""How a candidate is ranked, written once: the objective, the realism terms, and what the training
split says about known chemistry (``Chemistry``); the guided search and the screen both rank by it.

    score = first + SPREAD_WEIGHT * spread + PAIR_WEIGHT * (share of element pairs that no training
            compound holds) + ATOM_WEIGHT * atoms per formula unit + ELEMENT_WEIGHT * elements
            + RARITY_WEIGHT * (-log10 of the oxidation-state assignment's likelihood, space.assign)

where ``first`` is ``|mean - target|`` (objective ``target``), the predicted e_above_hull (objective
``stability``), or with a target range ``1 - p_in_range`` (the spread term then weighs 0: the
probability already prices the spread in). Lower is better.

>>> round(float(score(np.array([0.1]), np.array([0.2]), 0.5, np.array([5]), 2)[0]), 6)
0.505
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from stoichgen.chem.hull import Hull
from stoichgen.data import Dataset
from stoichgen.space.formulas import fraction_keys

__all__ = ["ATOM_WEIGHT", "ELEMENT_WEIGHT", "OBJECTIVES", "PAIR_WEIGHT", "RARITY_WEIGHT", "SPREAD_WEIGHT",
           "Chemistry", "first_term", "hull_of", "p_in_range", "score", "substitutes",
           "describe_score"]  # fmt: skip

SPREAD_WEIGHT = 1.0
PAIR_WEIGHT = 0.3
ATOM_WEIGHT = 0.003
ELEMENT_WEIGHT = 0.02  # simpler chemistry first: real compounds average 3.4 elements
# usual oxidation states first at equal fit: Li4PO3 (P2+, likelihood 0.008) pays 0.2 more than Li3PO4
RARITY_WEIGHT = 0.1
OBJECTIVES = ("target", "stability")  # hit the target, or minimise the predicted e_above_hull


def describe_score() -> str:
    """The score as the CLI help and the README print it."""
    return (
        "    score = |predicted_property - target| + uncertainty\n"
        f"            + {PAIR_WEIGHT:g} x (share of element pairs no training compound holds)\n"
        f"            + {ATOM_WEIGHT:g} x atoms per formula unit + {ELEMENT_WEIGHT:g} x elements\n"
        f"            + {RARITY_WEIGHT:g} x -log10(likelihood of the oxidation states)   (lower is better)"
    )


def p_in_range(mean: np.ndarray, spread: np.ndarray, target_range: tuple[float, float]) -> np.ndarray:
    """The probability that the property lies in ``target_range`` (low, high; an unbounded side is
    ``±inf``) when it is normal with the surrogate's mean and calibrated spread (``scipy.stats.norm``).

    >>> p_in_range(np.array([0.0]), np.array([1.0]), (-1.0, 1.0)).round(4).tolist()
    [0.6827]
    """
    low, high = target_range
    scale = np.maximum(np.asarray(spread, dtype=float), 1e-12)  # a zero spread: a step, not NaN
    return norm.cdf(high, loc=mean, scale=scale) - norm.cdf(low, loc=mean, scale=scale)


def first_term(
    mean: np.ndarray,
    target: float | None,
    e_hull: np.ndarray | None,
    spread: np.ndarray | None = None,
    target_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """The objective's term: with a ``target_range``, 1 − ``p_in_range`` (needs ``spread``); else the
    predicted e_above_hull when given (objective ``stability``); else the distance to the target (NaN
    without a target)."""
    if target_range is not None:
        if spread is None:
            raise ValueError("internal error: a target range needs the spread")
        return 1.0 - p_in_range(mean, spread, target_range)
    if e_hull is not None:
        return e_hull
    return np.abs(mean - target) if target is not None else np.full(len(mean), np.nan)


def score(
    first: np.ndarray,
    spread: np.ndarray,
    unseen_pairs: float | np.ndarray,
    atoms: np.ndarray,
    n_elements: int,
    rarity: float | np.ndarray = 0.0,
) -> np.ndarray:
    """What the guided search and the screen rank by, lower is better (module docstring)."""
    return (
        first
        + SPREAD_WEIGHT * spread
        + PAIR_WEIGHT * unseen_pairs
        + ATOM_WEIGHT * atoms
        + ELEMENT_WEIGHT * n_elements
        + RARITY_WEIGHT * rarity
    )


@dataclass(frozen=True, eq=False)
class Chemistry:
    """What a search learns from a training split: element frequencies, which element pairs occur
    together, the known formulas (as fraction keys), and the element set of each compound."""

    symbols: tuple[str, ...]
    frequency: np.ndarray  # (V,) share of training compounds holding each element
    together: np.ndarray  # (V, V) bool: some training compound holds both
    known: frozenset[bytes]  # fraction keys of the training split's formulas
    y: np.ndarray  # (N,) training property
    sets: tuple[tuple[str, ...], ...]  # (N,) element set of each training compound

    @classmethod
    def from_fractions(cls, symbols: tuple[str, ...], x_b: np.ndarray, y: np.ndarray) -> Chemistry:
        present = np.asarray(x_b) > 0  # (N, V)
        together = (present.T.astype(np.int64) @ present.astype(np.int64)) > 0  # (V, V)
        sets = tuple(tuple(symbols[i] for i in np.flatnonzero(row)) for row in present)
        known = frozenset(fraction_keys(x_b))
        return cls(symbols, present.mean(axis=0), together, known, np.asarray(y), sets)

    def index(self, symbol: str) -> int:
        return self.symbols.index(symbol)

    def unseen_pairs(self, elements: Sequence[str]) -> float:
        """The share of the set's element pairs that no training compound holds (0 for one element)."""
        idx = [self.index(s) for s in elements]
        pairs = [(a, b) for i, a in enumerate(idx) for b in idx[i + 1 :]]
        return sum(not self.together[a, b] for a, b in pairs) / max(1, len(pairs))


@functools.cache
def substitutes(symbol: str, how_many: int = 4) -> tuple[str, ...]:
    """The elements most likely to replace ``symbol`` in a known compound, by pymatgen's ion-substitution
    probabilities (Hautier et al. 2011; offline table shipped with pymatgen), best first: for each other
    element, the largest probability over pairs of their species with the same oxidation state."""
    probability, species = _substitution_probability()
    scores: dict[str, float] = {}
    for a in species:
        if a.symbol != symbol:
            continue
        for b in species:
            if b.symbol != symbol and b.oxi_state == a.oxi_state:
                scores[b.symbol] = max(scores.get(b.symbol, 0.0), probability.cond_prob(a, b))
    return tuple(sorted(scores, key=lambda other: (-scores[other], other))[:how_many])


@functools.cache
def _substitution_probability():
    from pymatgen.analysis.structure_prediction.substitution_probability import SubstitutionProbability

    probability = SubstitutionProbability()
    return probability, sorted(probability.species, key=str)  # a set: its order changes with the hash seed


def hull_of(dataset: Dataset) -> Hull:
    """The hull of a data set's compounds (reduced formulas, property as formation energy per atom)."""
    return Hull(list(dataset.frame["reduced_formula"]), dataset.y)
