"""Charge balancing: the paper's Metropolis-Hastings modification (Sec. 4) and exact small-integer
balancing (beyond the paper).

``balance_valence`` makes rows neutral by the paper's Metropolis-Hastings modification (``"mh"``) or by moving
each row to the nearest exactly neutral small-integer formula over the same elements (``"exact"``).
Both keep every element of a thresholded row at or above the threshold, so decoding the result with
the same threshold keeps all its elements.

>>> vocab = Vocabulary(("O", "Na", "Cl", "Fe"))
>>> x = np.array([[0.0, 0.5, 0.5, 0.0], [0.6, 0.0, 0.0, 0.4], [0.0, 1 / 3, 2 / 3, 0.0]])
>>> balance_valence(x, vocab, "exact").x[2].round(2).tolist()  # NaCl2 -> NaCl
[0.0, 0.5, 0.5, 0.0]
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from stoichgen.chem.composition import DEFAULT_THRESHOLD, Vocabulary, threshold_fractions
from stoichgen.chem.oxidation import (
    CHUNK,
    DEFAULT_TOL,
    BatchLayout,
    OxidationTable,
    States,
    as_batch,
    assignment_set,
    assignments,
    batch_layout,
    charge_blocks,
    check_table,
    layout_valence,
)
from stoichgen.errors import InputError, check_choice

Method = Literal["none", "mh", "exact"]
BALANCE_METHODS: tuple[Method, ...] = ("none", "mh", "exact")

DEFAULT_SIGMA = 0.05  # paper Sec. 4; standard deviation per compressed fraction
DEFAULT_N_PROPOSALS = 100  # paper Sec. 5.2: N
DEFAULT_MAX_ITERATIONS = 10_000  # authors' code (_ITERATION)
DEFAULT_DECIMALS = 2  # authors' code (_ROUND): chains live on the 0.01 grid
DEFAULT_MAX_ATOMS = 20  # exact balancing: formula units up to 20 atoms (Y3Al5O12); see exact_balance
# The exact search grows steeply with atoms for many-element rows: an 8-element row takes about 1 s at
# 30 atoms and 16 s at 40 (ICSD states, 2-core machine), so larger formula units are refused.
MAX_EXACT_ATOMS = 30
# Generated rows with more elements than any MP composition are junk, and MH chains on them can run all
# their iterations at seconds each: generation leaves them as they are (only measured).
MAX_BALANCE_ELEMENTS = 8


# ----------------------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class BalanceResult:
    """Outcome of ``balance_valence`` for an (N, V) batch; all arrays read-only.

    ``x`` holds the thresholded input rows, modified where balanced. ``valence_raw`` / ``valence`` are
    min_v |v^T x| before / after (NaN when a row is empty or has an element without states).
    ``unbalanceable`` rows have no neutral composition with every one of their elements at or above the
    threshold: empty rows, elements without states (noble gases), states of one sign only
    (intermetallics such as NaK). ``iterations`` counts MH proposal rounds (0 for other methods and for
    rows neutral at the start).
    """

    x: np.ndarray
    valence_raw: np.ndarray
    valence: np.ndarray
    charge_neutral: np.ndarray
    unbalanceable: np.ndarray
    iterations: np.ndarray
    method: Method
    oxidation: OxidationTable

    def __post_init__(self) -> None:
        for name in ("x", "valence_raw", "valence", "charge_neutral", "unbalanceable", "iterations"):
            getattr(self, name).flags.writeable = False

    def __len__(self) -> int:
        return len(self.x)

    @property
    def neutral_fraction(self) -> float:
        return float(self.charge_neutral.mean()) if len(self) else 0.0


@dataclass(frozen=True)
class _BalanceInput:
    kept: np.ndarray  # thresholded rows
    layout: BatchLayout
    raw: np.ndarray  # valence of kept
    feasible: np.ndarray  # a neutral composition with every element >= threshold exists
    todo: np.ndarray  # feasible and not neutral yet

    def result(
        self,
        x: np.ndarray,
        iterations: np.ndarray,
        method: Method,
        oxidation: OxidationTable,
        tol: float,
        neutral: np.ndarray | None = None,
    ) -> BalanceResult:
        """``neutral``: which rows are charge neutral, where not ``valence < tol`` (exact balancing)."""
        after = layout_valence(x, self.layout)  # balancing keeps every element, so the layout still applies
        if neutral is None:
            with np.errstate(invalid="ignore"):
                neutral = after < tol
        return BalanceResult(x, self.raw, after, neutral, ~self.feasible, iterations, method, oxidation)


def _balance_input(
    x: np.ndarray, vocab: Vocabulary, threshold: float, oxidation: OxidationTable, tol: float
) -> _BalanceInput:
    check_table(oxidation)
    if not tol > 0:
        raise InputError(f"tol must be positive, got {tol}")
    if not 0 <= threshold < 1:
        raise InputError(f"threshold must be in [0, 1), got {threshold}")
    kept = threshold_fractions(as_batch(x, vocab), threshold)
    layout = batch_layout(kept, vocab, oxidation)
    raw = layout_valence(kept, layout)
    feasible = layout.can_neutralise(threshold) & layout.has_states
    with np.errstate(invalid="ignore"):
        todo = feasible & ~(raw < tol)
    return _BalanceInput(kept, layout, raw, feasible, todo)


# ----------------------------------------------------------------------------------------------------------
# Metropolis-Hastings valence modification (paper Sec. 4)


def _round_to_units(p: np.ndarray, unit: int) -> np.ndarray:
    """Fractions (..., K) summing to 1 -> counts of 1/unit summing exactly to ``unit`` (as floats).

    Cumulative rounding (differences of the rounded running sums): each count is within one unit of
    ``p * unit`` and the sum is exact, where plain rounding (authors' code) can leave 0.99 or 1.01.
    """
    return np.diff(np.round(np.cumsum(p, axis=-1) * unit), axis=-1, prepend=0.0)


def _lift_to_floor(counts: np.ndarray, mask: np.ndarray, floor_units: int) -> np.ndarray:
    """Raise every present count (N, K) to ``floor_units``, taking the units from the largest count."""
    counts = np.where(mask, counts, 0.0)
    needed = np.where(mask, np.maximum(floor_units - counts, 0.0), 0.0)
    counts += needed
    for row in np.flatnonzero(needed.sum(axis=1)):  # rare: only elements that rounded below the floor
        for _ in range(int(needed[row].sum())):
            counts[row, np.argmax(counts[row])] -= 1
    return counts


def _grid_floor(threshold: float, unit: int) -> int:
    """Fewest grid units whose fraction still passes the threshold (at least one)."""
    units = max(1, math.ceil(threshold * unit - 1e-9))
    return units + (units / unit < threshold)


@functools.lru_cache(maxsize=1024)  # bounded: its keys vary with every request
def _fewest_coins(coins: tuple[int, ...], limit: int) -> np.ndarray:
    """Fewest positive integers from ``coins`` (with repetition) summing to 0..limit; inf if impossible."""
    fewest = np.full(limit + 1, np.inf)
    fewest[0] = 0.0
    for amount in range(1, limit + 1):
        fewest[amount] = min((fewest[amount - c] for c in coins if c <= amount), default=np.inf) + 1
    return fewest


@functools.lru_cache(maxsize=4096)  # bounded: its keys vary with every request
def _grid_feasible(states: States, unit: int, floor_units: int) -> bool:
    """Whether some counts c_i >= floor_units with sum c = unit and sum c_i v_i = 0 exist for some v.

    With d_i = c_i - floor_units and v_i = low + delta_i (low = min v): the spare units sum_i d_i go to
    elements at ``low`` at no cost, so the condition is that T = -floor_units * sum(v) - spare * low is
    a sum of at most ``spare`` of the positive deltas. Sets beyond direct enumeration count as feasible.
    """
    state_set = assignment_set(states)
    spare = unit - len(states) * floor_units
    if not state_set.has_states or spare < 0:
        return False
    if state_set.right is not None:
        return True
    for v in state_set.left.astype(int).tolist():
        low = min(v)
        coins = tuple(sorted({c - low for c in v if c > low}))
        target = -floor_units * sum(v) - spare * low
        if target == 0:
            return True
        reachable = bool(coins) and 0 < target <= spare * coins[-1]
        if reachable and _fewest_coins(coins, unit * coins[-1])[target] <= spare:
            return True
    return False


def metropolis_hastings(
    x: np.ndarray,
    vocab: Vocabulary,
    *,
    oxidation: OxidationTable = "common",
    threshold: float = DEFAULT_THRESHOLD,
    sigma: float = DEFAULT_SIGMA,
    n_proposals: int = DEFAULT_N_PROPOSALS,
    max_iterations: int = DEFAULT_MAX_ITERATIONS,
    decimals: int | None = DEFAULT_DECIMALS,
    tol: float = DEFAULT_TOL,
    rng: np.random.Generator | int = 0,
) -> BalanceResult:
    """Paper Sec. 4: MH modification of the compressed vectors towards pi(x) = exp(-valence(x)^2).

    Rows are thresholded (paper's TH) and compressed to their elements. Rows already neutral and
    unbalanceable rows are kept as they are. Every other row starts from its composition rounded to
    ``decimals`` and, each iteration, draws ``n_proposals`` Gaussian proposals (std ``sigma`` per
    fraction), reflected at zero (|.|, which keeps the proposal symmetric, so
    alpha_j = min(1, pi(x_j) / pi(x))), renormalised to 1 and rounded; proposals with an element below
    the threshold get pi = 0, so no element is lost on decoding. The best proposal (largest alpha_j) is
    accepted with probability max_j alpha_j. A row stops when its valence is below ``tol`` or after
    ``max_iterations`` rounds. All active rows advance together in numpy; the result depends only on the
    inputs, the parameters and ``rng``.

    ``decimals=2`` follows the authors' code: the chain lives on the 0.01 grid (sums kept exactly 1) and
    a neutral result is exactly neutral as a 2-decimal composition. Ratios whose denominators do not
    divide 100 (TiO2, CaF2) have no neutral grid point; such element sets are detected exactly up front
    and their rows left unchanged (not neutral, ``iterations`` 0) instead of walked for
    ``max_iterations`` as the authors' loop would. ``decimals=None`` walks on continuous fractions and
    stops at ``tol``; ``exact_balance`` gives exact small formulas.

    >>> vocab = Vocabulary(("Na", "Cl"))
    >>> result = metropolis_hastings(np.array([[0.6, 0.4]]), vocab, rng=0)
    >>> result.x.tolist(), bool(result.charge_neutral[0])
    ([[0.5, 0.5]], True)
    """
    if not sigma > 0:
        raise InputError(f"sigma must be positive, got {sigma}")
    if n_proposals < 1 or max_iterations < 0:
        raise InputError(
            f"need n_proposals >= 1 and max_iterations >= 0, got {n_proposals}, {max_iterations}"
        )
    if decimals is not None and decimals < 0:
        raise InputError(f"decimals must be None or >= 0, got {decimals}")
    prep = _balance_input(x, vocab, threshold, oxidation, tol)
    layout, generator = prep.layout, np.random.default_rng(rng)
    rows = np.flatnonzero(prep.todo)  # one chain per row to balance
    mask = layout.mask[rows]
    state = layout.compressed(prep.kept, rows)
    unit = None if decimals is None else 10**decimals
    floor = threshold
    if unit is not None:
        floor_units = _grid_floor(threshold, unit)
        floor = floor_units / unit
        # Rows whose element set has no neutral point on the grid are left alone instead of walked for
        # max_iterations (the authors' loop would); checked exactly per element set.
        feasible = {
            s: _grid_feasible(layout.sets[s], unit, floor_units) for s in set(layout.set_of_row[rows])
        }
        rows = rows[np.array([feasible[s] for s in layout.set_of_row[rows]], dtype=bool)]
        mask, state = layout.mask[rows], layout.compressed(prep.kept, rows)
        state = _lift_to_floor(_round_to_units(state, unit), mask, floor_units) / unit
    steps = np.zeros(len(rows), dtype=int)
    current = np.zeros(len(rows))
    set_ids, width = layout.set_of_row[rows], mask.shape[1]
    for block in charge_blocks(np.arange(len(rows)), set_ids, layout.sets, width, 1):
        current[block.members] = block.min_charge(
            state[block.members, None, :], np.arange(len(block.members))
        )[:, 0]
    active = current >= tol
    blocks, grouped = [], 0
    for _ in range(max_iterations):
        n_active = int(active.sum())
        if not n_active:
            break
        if 2 * n_active <= grouped or not blocks:  # regroup as chains finish: fewer, better-packed passes
            live = np.flatnonzero(active)
            blocks, grouped = charge_blocks(live, set_ids[live], layout.sets, width, n_proposals), n_active
        for block in blocks:
            local = np.flatnonzero(active[block.members])
            if not len(local):
                continue
            chains = block.members[local]
            noise = generator.standard_normal((len(chains), n_proposals, width))
            proposals = np.abs(state[chains, None, :] + sigma * noise) * mask[chains, None, :]
            proposals /= proposals.sum(axis=-1, keepdims=True)
            if unit is not None:
                proposals = _round_to_units(proposals, unit) / unit
            charge = block.min_charge(proposals, local)
            charge[((proposals < floor - 1e-12) & mask[chains, None, :]).any(axis=-1)] = np.inf  # pi = 0
            best = np.argmin(charge, axis=1)
            best_charge = charge[np.arange(len(chains)), best]
            # pi(x_j) / pi(x) = exp(y^2 - y_j^2); the best proposal carries the largest alpha_j.
            with np.errstate(invalid="ignore"):
                alpha = np.exp(np.minimum(0.0, current[chains] ** 2 - best_charge**2))
            accept = generator.random(len(chains)) < alpha
            state[chains[accept]] = proposals[accept, best[accept]]
            current[chains[accept]] = best_charge[accept]
            steps[chains] += 1
            active[chains] = current[chains] >= tol
    out = prep.kept.copy()
    slot_rows = np.broadcast_to(rows[:, None], mask.shape)
    out[slot_rows[mask], layout.cols[rows][mask]] = state[mask]  # masked slots alias column 0: skip them
    iterations = np.zeros(len(out), dtype=int)
    iterations[rows] = steps
    return prep.result(out, iterations, "mh", oxidation, tol)


# ----------------------------------------------------------------------------------------------------------
# Exact balancing to small integer formulas


@functools.lru_cache(maxsize=64)  # bounded: its keys vary with every request
def count_vectors(k: int, max_count: int, max_atoms: int) -> np.ndarray:
    """Integer vectors c with 1 <= c_i <= max_count and sum c <= max_atoms. Shape (n, k), read-only."""
    vectors = np.zeros((1, 0), dtype=np.int64)
    for slot in range(k):
        still_needed = k - slot - 1  # each later element takes at least one atom
        totals = vectors.sum(axis=1)
        parts = []
        for count in range(1, max_count + 1):
            fits = vectors[totals + count + still_needed <= max_atoms]
            parts.append(np.hstack([fits, np.full((len(fits), 1), count, dtype=np.int64)]))
        vectors = np.vstack(parts)
    vectors.flags.writeable = False
    return vectors


def _charged_half(states: States, max_count: int, max_atoms: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (count vector, charge) pairs of a half set: indices into its count vectors and charges,
    sorted by charge."""
    counts = count_vectors(len(states), max_count, max_atoms)
    charge = counts @ assignments(states).astype(np.int64).T  # (n, C), exact integers
    # One int64 key per pair (charge major), so np.unique works on a flat array.
    keys = np.unique((charge - charge.min(initial=0)) * len(counts) + np.arange(len(counts))[:, None])
    return keys % len(counts), keys // len(counts) + charge.min(initial=0)


@functools.lru_cache(maxsize=1024)  # bounded: its keys vary with every request
def _neutral_fractions(states: States, max_count: int, max_atoms: int, floor: float) -> np.ndarray:
    """Fractions of the primitive count vectors within bounds that are exactly neutral. Shape (n, k).

    Meet in the middle over (counts, states): each half lists its distinct (counts, charge) pairs, and
    pairs with opposite charges whose atoms fit in ``max_atoms`` are joined, so the work grows with the
    halves and the answer rather than with (count vectors x assignments).
    """
    k = len(states)
    if not assignment_set(states).has_states or k > max_atoms:
        return np.zeros((0, k))
    if k == 1:
        return np.ones((1, 1)) if 0 in states[0] else np.zeros((0, 1))
    left_slots, right_slots = list(range(k // 2)), list(range(k // 2, k))
    halves = []
    for slots, others in ((left_slots, right_slots), (right_slots, left_slots)):
        half_states = tuple(states[s] for s in slots)
        rows, charge = _charged_half(half_states, max_count, max_atoms - len(others))
        halves.append((count_vectors(len(slots), max_count, max_atoms - len(others)), rows, charge))
    (left_counts, left_rows, left_charge), (right_counts, right_rows, right_charge) = halves
    left_atoms, right_atoms = left_counts.sum(axis=1)[left_rows], right_counts.sum(axis=1)[right_rows]
    # Right pairs sorted by (charge, atoms): the partners of a left pair (opposite charge, atoms within
    # the remaining budget) form one contiguous run, found by two searches.
    stride = max_atoms + 1
    right_key = right_charge * stride + right_atoms
    order = np.argsort(right_key, kind="stable")
    right_key, right_rows = right_key[order], right_rows[order]
    low = np.searchsorted(right_key, -left_charge * stride, side="left")
    high = np.searchsorted(right_key, -left_charge * stride + (max_atoms - left_atoms), side="right")
    n_matches = high - low
    left_pick = left_rows[np.repeat(np.arange(len(left_rows)), n_matches)]
    right_pick = right_rows[
        np.repeat(low - np.cumsum(n_matches) + n_matches, n_matches) + np.arange(n_matches.sum())
    ]
    # One row per count vector, whatever the assignment (pairs of count-vector indices, as flat keys).
    pair = np.unique(left_pick * len(right_counts) + right_pick)
    counts = np.hstack([left_counts[pair // len(right_counts)], right_counts[pair % len(right_counts)]])
    counts = counts[np.gcd.reduce(counts, axis=1) == 1] if len(counts) else counts.reshape(0, k)
    fractions = counts / counts.sum(axis=1, keepdims=True)
    fractions = fractions[fractions.min(axis=1, initial=1.0) >= floor]
    fractions.flags.writeable = False
    return fractions


def exact_balance(
    x: np.ndarray,
    vocab: Vocabulary,
    *,
    oxidation: OxidationTable = "common",
    threshold: float = DEFAULT_THRESHOLD,
    max_atoms: int = DEFAULT_MAX_ATOMS,
    max_count: int | None = None,
    tol: float = DEFAULT_TOL,
) -> BalanceResult:
    """Move each non-neutral row to the nearest exactly neutral small-integer formula (beyond the paper).

    Over the elements of the thresholded row, candidates are integer counts 1 <= c_i <= ``max_count``
    (default: limited only by ``max_atoms``), at most ``max_atoms`` atoms per formula unit, every
    fraction at or above the threshold, and sum_i c_i v_i = 0 for one oxidation state v_i per element.
    The candidate nearest in atomic-fraction space (Euclidean; first in enumeration order on ties)
    replaces the row. Candidates are enumerated exhaustively, once per oxidation-state signature and
    bounds (cached), so a returned row is neutral by construction; rows without a candidate keep their
    fractions and come back with ``charge_neutral`` False, whatever their valence. Rows neutral within
    ``tol`` move too, unless they already are such a formula (their own nearest candidate): within
    ``tol`` a row can still be an 80-atom formula unit, or not neutral at all as integers.
    ``charge_neutral`` is True exactly for the rows that are a candidate.

    >>> vocab = Vocabulary(("O", "Fe"))
    >>> exact_balance(np.array([[0.58, 0.42]]), vocab).x.round(3).tolist()  # Fe0.42O0.58 -> Fe2O3
    [[0.6, 0.4]]
    >>> result = exact_balance(np.array([[0.6001, 0.3999]]), vocab)  # within tol, but Fe3999O6001
    >>> float(result.valence_raw[0].round(4)), result.x.round(3).tolist()
    (0.0005, [[0.6, 0.4]])
    """
    if max_atoms < 1 or (max_count is not None and max_count < 1):
        raise InputError(f"max_atoms and max_count must be >= 1, got {max_atoms}, {max_count}")
    if max_atoms > MAX_EXACT_ATOMS:
        raise InputError(
            f"max_atoms {max_atoms} is above {MAX_EXACT_ATOMS}, the largest formula unit exact balancing "
            "searches (the search grows steeply with atoms)"
        )
    limit = max_atoms if max_count is None else min(max_count, max_atoms)
    prep = _balance_input(x, vocab, threshold, oxidation, tol)
    layout, out = prep.layout, prep.kept.copy()
    exact = np.zeros(len(out), dtype=bool)
    # Every feasible row, not only those beyond tol: "exact" is a small integer formula neutral as
    # integers, which a row within tol need not be. An exact row is its own nearest candidate and stays.
    for index in np.unique(layout.set_of_row[prep.feasible]):
        candidates = _neutral_fractions(layout.sets[index], limit, max_atoms, threshold)
        if not len(candidates):
            continue
        rows = np.flatnonzero(prep.feasible & (layout.set_of_row == index))
        exact[rows] = True
        cols = list(layout.set_cols[index])
        target = prep.kept[rows[:, None], cols]
        step = max(1, CHUNK // len(candidates))
        for start in range(0, len(rows), step):
            part = slice(start, start + step)
            # |t - c|^2 up to the row constant |t|^2, which does not change the argmin
            distance = (candidates**2).sum(axis=1) - 2.0 * target[part] @ candidates.T
            out[rows[part][:, None], cols] = candidates[np.argmin(distance, axis=1)]
    return prep.result(out, np.zeros(len(out), dtype=int), "exact", oxidation, tol, neutral=exact)


# ----------------------------------------------------------------------------------------------------------
# Entry point and SMACT


def balance_valence(
    x: np.ndarray,
    vocab: Vocabulary,
    method: Method = "mh",
    *,
    oxidation: OxidationTable = "common",
    threshold: float = DEFAULT_THRESHOLD,
    tol: float = DEFAULT_TOL,
    rng: np.random.Generator | int = 0,
    sigma: float = DEFAULT_SIGMA,
    n_proposals: int = DEFAULT_N_PROPOSALS,
    max_iterations: int = DEFAULT_MAX_ITERATIONS,
    decimals: int | None = DEFAULT_DECIMALS,
    max_atoms: int = DEFAULT_MAX_ATOMS,
    max_count: int | None = None,
) -> BalanceResult:
    """Threshold an (N, V) batch of generated fractions and balance its valence.

    ``"none"`` only measures, ``"mh"`` runs ``metropolis_hastings`` (paper Sec. 4), ``"exact"`` runs
    ``exact_balance``. Parameters a method does not use are ignored.

    >>> vocab = Vocabulary(("Na", "Cl"))
    >>> balance_valence(np.array([[0.6, 0.4]]), vocab, "none").valence_raw.round(2).tolist()
    [0.2]
    """
    check_choice(method, BALANCE_METHODS, "method", "balancing method")
    if method == "mh":
        return metropolis_hastings(
            x,
            vocab,
            oxidation=oxidation,
            threshold=threshold,
            sigma=sigma,
            n_proposals=n_proposals,
            max_iterations=max_iterations,
            decimals=decimals,
            tol=tol,
            rng=rng,
        )
    if method == "exact":
        return exact_balance(
            x,
            vocab,
            oxidation=oxidation,
            threshold=threshold,
            max_atoms=max_atoms,
            max_count=max_count,
            tol=tol,
        )
    prep = _balance_input(x, vocab, threshold, oxidation, tol)  # "none": measured only
    return prep.result(prep.kept, np.zeros(len(prep.kept), dtype=int), "none", oxidation, tol)
