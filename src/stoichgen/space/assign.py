"""Each candidate's oxidation states and how likely they are: one state per element that makes the
formula neutral, the most likely one by how often ions occur in known compounds.

The likelihood of an assignment is the product over its elements of P(state | element, ionic), the
share of that element's ionic occurrences in the ICSD that carry the state, from pymatgen's own
occurrence table (``icsd_bv.yaml``, what ``Composition.oxi_state_guesses`` ranks by). ``La3+`` is
0.97 of lanthanum's, ``La2+`` 0.02; ``P5+`` 0.78 of phosphorus', ``P2+`` 0.008. Rows of metals only that
the rule accepts as alloys have no assignment (empty states, NaN probability).

>>> states, probability = assign(("Li", "P", "O"), np.array([[3, 1, 4], [4, 1, 3]]), TABLES["icsd"])
>>> [oxidation_text(("Li", "P", "O"), s) for s in states]
['Li+ P5+ O2-', 'Li+ P2+ O2-']
>>> probability.round(3).tolist()
[0.777, 0.008]
"""

from __future__ import annotations

import functools
import math
import os
from collections import defaultdict

import numpy as np

from stoichgen.space.formulas import SMACT, Rule, _is_alloy, _pauling_x, state_choices

__all__ = ["TABLES", "assign", "oxidation_text", "rarity", "state_probability"]

# the user's --oxidation: which states a candidate may use (cations less electronegative than anions, or
# metals only, as SMACT checks); "icsd" is SMACT's ICSD-24 table, the guided search's space before
TABLES: dict[str, Rule] = {
    "common": Rule("common", pauling=True, alloys=True),
    "icsd": SMACT,
    "all": Rule("all", pauling=True, alloys=True),
}
_FLOOR = 1e-6  # the likelihood of a state the table has never seen: rare, not impossible


@functools.cache
def _occurrence() -> dict[str, dict[int, float]]:
    """Ionic occurrences per element and state in pymatgen's ICSD table (state 0 left out)."""
    import pymatgen.core.composition as composition
    from monty.serialization import loadfn
    from pymatgen.core import Species

    table = loadfn(os.path.join(os.path.dirname(composition.__file__), "icsd_bv.yaml"))["occurrence"]
    out: dict[str, dict[int, float]] = defaultdict(dict)
    for name, count in table.items():
        species = Species.from_str(name)
        if species.oxi_state:
            out[species.symbol][int(species.oxi_state)] = float(count)
    return dict(out)


@functools.cache
def state_probability(symbol: str, state: int) -> float:
    """P(state | element, ionic) from pymatgen's ICSD occurrences; a small floor where it has none.

    >>> round(state_probability("Fe", 3), 2), round(state_probability("Fe", 2), 2)
    (0.6, 0.37)
    """
    counts = _occurrence().get(symbol, {})
    total = sum(counts.values())
    return max(counts.get(int(state), 0.0) / total, _FLOOR) if total else _FLOOR


@functools.lru_cache(maxsize=4096)  # bounded: its keys vary with every request
def _choice_probability(elements: tuple[str, ...], rule: Rule) -> np.ndarray:
    """The likelihood of each state choice of ``state_choices(elements, rule)``. (C,)."""
    choices = state_choices(elements, rule)
    out = np.array([math.prod(state_probability(e, int(s)) for e, s in zip(elements, row, strict=True))
                    for row in choices.tolist()])  # fmt: skip
    return out.reshape(len(choices))


def assign(elements: tuple[str, ...], counts: np.ndarray, rule: Rule) -> tuple[np.ndarray, np.ndarray]:
    """For rows of integer counts (M, k) over ``elements``: the most likely neutral state choice of the
    rule's table (M, k), zeros where there is none (alloys, or formulas the rule does not accept), and
    its likelihood (M,), NaN where there is none."""
    counts = np.asarray(counts, dtype=np.int64)
    choices = state_choices(tuple(elements), rule)  # (C, k)
    states = np.zeros(counts.shape, dtype=np.int64)
    probability = np.full(len(counts), np.nan)
    if not len(choices) or not len(counts):
        return states, probability
    likelihood = _choice_probability(tuple(elements), rule)  # (C,)
    neutral = counts @ choices.T == 0  # (M, C)
    scored = np.where(neutral, likelihood, -1.0)  # (M, C)
    best = scored.argmax(axis=1)  # (M,)
    found = neutral.any(axis=1)
    states[found] = choices[best[found]]
    probability[found] = likelihood[best[found]]
    return states, probability


def rarity(probability: np.ndarray, elements: tuple[str, ...], rule: Rule) -> np.ndarray:
    """What the score charges for unusual chemistry: -log10 of the assignment's likelihood; 0 for alloys
    (metals only, no assignment)."""
    out = -np.log10(np.maximum(np.nan_to_num(probability, nan=1.0), _FLOOR))
    if _is_alloy(elements, rule):
        out = np.where(np.isnan(probability), 0.0, out)
    return out


def oxidation_text(elements: tuple[str, ...], states: np.ndarray) -> str:
    """``Li+ P5+ O2-``: one species per element in formula order; empty without an assignment.

    >>> oxidation_text(("O", "Fe"), np.array([-2, 3]))
    'Fe3+ O2-'
    """
    if not np.asarray(states).any():
        return ""
    order = sorted(range(len(elements)), key=lambda i: (_pauling_x(elements[i]), elements[i]))
    parts = []
    for i in order:
        s = int(states[i])
        magnitude = "" if abs(s) == 1 else str(abs(s))
        parts.append(f"{elements[i]}{magnitude}{'+' if s > 0 else '-'}")
    return " ".join(parts)
