"""Valence (charge) balance of compositions: oxidation states, valence, MH modification, exact balancing.

The valence of a fraction vector x over the elements it contains is min_v |v^T x|, the minimum over
assignments v of one oxidation state per element; the paper's target pi(x) = max_v exp(-(v^T x)^2)
(eq. 4) is exp(-valence^2). A row is charge neutral when its valence is below ``tol``. Oxidation states
come from pymatgen (``common``, ``all`` or ``icsd`` tables).

``balance`` makes rows neutral by the paper's Metropolis-Hastings modification (Sec. 4, ``"mh"``) or by
moving each row to the nearest exactly neutral small-integer formula over the same elements (``"exact"``).
Both keep every element of a thresholded row at or above the threshold, so decoding the result with
the same threshold keeps all its elements.

>>> vocab = Vocabulary(("O", "Na", "Cl", "Fe"))
>>> x = np.array([[0.0, 0.5, 0.5, 0.0], [0.6, 0.0, 0.0, 0.4], [0.0, 1 / 3, 2 / 3, 0.0]])
>>> charge_neutral(x, vocab).tolist()  # NaCl, Fe2O3, NaCl2
[True, True, False]
>>> balance(x, vocab, "exact").x[2].round(2).tolist()  # NaCl2 -> NaCl
[0.0, 0.5, 0.5, 0.0]
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pymatgen.core import Element
from smact.screening import smact_validity

from stoichgen.composition import DEFAULT_THRESHOLD, Vocabulary, threshold_fractions

OxidationTable = Literal["common", "all", "icsd"]
Method = Literal["none", "mh", "exact"]

# |v^T x| below this is neutral. It is far below the smallest non-zero valence on the 2-decimal grid
# (0.01 with integer states), so there it means exactly zero, while float round-off of exact
# compositions (1/3, 2/3, ...) passes; for continuous walks it is the accepted residual charge per atom.
DEFAULT_TOL = 1e-3
DEFAULT_SIGMA = 0.05  # paper Sec. 4; standard deviation per compressed fraction
DEFAULT_N_PROPOSALS = 100  # paper Sec. 5.2: N
DEFAULT_MAX_ITERATIONS = 10_000  # authors' code (_ITERATION)
DEFAULT_DECIMALS = 2  # authors' code (_ROUND): chains live on the 0.01 grid
DEFAULT_MAX_ATOMS = 20  # exact balancing: formula units up to 20 atoms (Y3Al5O12); see exact_balance

_TABLE_ATTRIBUTE = {
    "common": "common_oxidation_states",
    "all": "oxidation_states",
    "icsd": "icsd_oxidation_states",
}
# Element sets with up to this many assignments are enumerated outright; beyond, meet in the middle
# (two half-enumerations and a sorted search), so "all"-table sets of 5-6 transition metals stay cheap.
_DIRECT_ASSIGNMENTS = 1024
_MAX_ASSIGNMENTS = 10**8
_CHUNK = 1 << 22  # elements per temporary array (32 MiB of float64)
# Fixed cost of one padded numpy pass, in multiply-adds: rows are grouped into blocks of similar
# assignment counts when padding everything to the largest would cost more than extra passes.
_BLOCK_OVERHEAD = 200_000


# ----------------------------------------------------------------------------------------------------------
# Oxidation-state tables and assignments


def _table_attribute(table: str) -> str:
    try:
        return _TABLE_ATTRIBUTE[table]
    except KeyError:
        raise ValueError(
            f"unknown oxidation table {table!r}; choose one of {sorted(_TABLE_ATTRIBUTE)}"
        ) from None


@functools.cache
def oxidation_states(symbol: str, table: OxidationTable = "common") -> tuple[int, ...]:
    """Sorted oxidation states of an element in a pymatgen table; empty for e.g. noble gases.

    >>> oxidation_states("Fe"), oxidation_states("Fe", "all")[:3], oxidation_states("He")
    ((2, 3), (-2, -1, 1), ())
    """
    attribute = _table_attribute(table)
    if not isinstance(symbol, str) or not Element.is_valid_symbol(symbol):
        raise ValueError(f"unknown element symbol {symbol!r}")
    return tuple(sorted({int(state) for state in getattr(Element(symbol), attribute)}))


States = tuple[tuple[int, ...], ...]  # oxidation states of each element of a set, in vocabulary order


def _assignments(states: States, slots: Sequence[int] | None = None) -> np.ndarray:
    """Every choice of one state per element in ``slots`` (default all; others zero). Shape (prod, k)."""
    slots = range(len(states)) if slots is None else slots
    out = np.zeros((math.prod(len(states[s]) for s in slots), len(states)))
    repeat = len(out)
    for s in slots:  # "ij" order, the first slot slowest; no meshgrid, which stops at 32 dimensions
        values = np.array(states[s], dtype=float)
        repeat //= len(values)
        out[:, s] = np.tile(np.repeat(values, repeat), len(out) // (repeat * len(values)))
    return out


@dataclass(frozen=True)
class _StateSet:
    """The assignments of one element set, as ``left[a] + right[b]`` (``right`` None: ``left`` has all)."""

    states: States
    left: np.ndarray  # (CL, k), zero on the right half's elements
    right: np.ndarray | None  # (CR, k), zero on the left half's elements
    left_slots: tuple[int, ...]
    right_slots: tuple[int, ...]

    @property
    def has_states(self) -> bool:
        return bool(self.states) and all(self.states)


@functools.cache
def _state_set(states: States) -> _StateSet:
    sizes = [len(s) for s in states]
    total = math.prod(sizes)
    if total == 0 or not states:
        return _StateSet(states, np.zeros((1, len(states))), None, (), ())
    if total > _MAX_ASSIGNMENTS:
        raise ValueError(
            f"{total} oxidation-state assignments for an element set with states {states}; "
            "raise the threshold or use a smaller oxidation table"
        )
    if total <= _DIRECT_ASSIGNMENTS:
        return _StateSet(states, _assignments(states), None, tuple(range(len(states))), ())
    # Balanced halves: largest state lists first, each to the half with the smaller product so far.
    halves: tuple[list[int], list[int]] = ([], [])
    for slot in sorted(range(len(states)), key=lambda s: -sizes[s]):
        products = [math.prod(sizes[s] for s in half) for half in halves]
        halves[int(products[1] < products[0])].append(slot)
    left, right = sorted(halves[0]), sorted(halves[1])
    return _StateSet(
        states, _assignments(states, left), _assignments(states, right), tuple(left), tuple(right)
    )


def _half_stats(assignments: np.ndarray, slots: Sequence[int]) -> tuple[np.ndarray, ...]:
    """Sum, min and max of each half-assignment over its own slots (empty half: 0, +inf, -inf)."""
    own = assignments[:, list(slots)]
    return own.sum(axis=1), own.min(axis=1, initial=np.inf), own.max(axis=1, initial=-np.inf)


@functools.cache
def _can_neutralise(states: States, floor: float) -> bool:
    """Whether v^T x = 0 for some assignment v and fractions x_i >= floor summing to 1 (x_i > 0 if 0)."""
    state_set = _state_set(states)
    if not state_set.has_states:
        return False
    # v^T x is linear on the simplex {x_i >= floor}; its vertices put the spare mass on one element, so
    # the reachable range is floor * sum(v) + spare * [min(v), max(v)]. Checked for all left x right.
    spare = 1.0 - len(states) * floor
    left_sum, left_min, left_max = _half_stats(state_set.left, state_set.left_slots)
    right = state_set.left[:1] * 0 if state_set.right is None else state_set.right
    right_sum, right_min, right_max = _half_stats(right, state_set.right_slots)
    step = max(1, _CHUNK // len(right))
    for start in range(0, len(left_sum), step):
        part = slice(start, start + step)
        total = left_sum[part, None] + right_sum
        low = np.minimum(left_min[part, None], right_min)
        high = np.maximum(left_max[part, None], right_max)
        if floor <= 0:  # open simplex: both signs, or zero everywhere
            ok = ((low < 0) & (high > 0)) | ((low == 0) & (high == 0))
        else:
            ok = (floor * total + spare * low <= 1e-12) & (floor * total + spare * high >= -1e-12)
        if ok.any():
            return True
    return False


def _min_abs_charge(p: np.ndarray, left: np.ndarray, right: np.ndarray | None) -> np.ndarray:
    """min over assignments of |p . v| for every item: p (A, n, K), left (A, CL, K), right (A, CR, K).

    Returns (A, n). With ``right`` the minimum over left x right pairs is found by sorting the right sums
    and searching for each negated left sum (meet in the middle), all items in one ``searchsorted``.
    """
    a = p @ left.transpose(0, 2, 1)  # (A, n, CL)
    if right is None:
        return np.abs(a).min(axis=-1)
    b = np.sort(p @ right.transpose(0, 2, 1), axis=-1)  # (A, n, CR)
    n_left, n_right = a.shape[-1], b.shape[-1]
    a2, b2 = a.reshape(-1, n_left), b.reshape(-1, n_right)
    items = len(a2)
    # Shift each item's sums into its own disjoint interval so one flat sorted array serves all items.
    span = 2.0 * (np.abs(a2).max(initial=0.0) + np.abs(b2).max(initial=0.0)) + 1.0
    offset = np.arange(items, dtype=float)[:, None] * span
    pos = np.searchsorted((b2 + offset).ravel(), (offset - a2).ravel()).reshape(items, n_left)
    pos -= np.arange(items)[:, None] * n_right
    best = np.full(a2.shape, np.inf)
    for candidate in (pos - 1, pos):
        b_near = np.take_along_axis(b2, np.clip(candidate, 0, n_right - 1), axis=1)
        best = np.minimum(best, np.abs(a2 + b_near))  # exact value from the unshifted sums
    return best.min(axis=1).reshape(a.shape[:2])


# ----------------------------------------------------------------------------------------------------------
# Blocks: chains (compressed rows) of similar assignment counts, padded for one numpy pass


@functools.cache
def _padded(states: States, n_left: int, n_right: int, width: int) -> tuple[np.ndarray, np.ndarray | None]:
    """A set's assignments padded to (n_left, width) / (n_right, width) by repeating the first one."""
    state_set = _state_set(states)

    def pad(assignments: np.ndarray, n_rows: int) -> np.ndarray:
        out = np.zeros((n_rows, width))
        out[:, : assignments.shape[1]] = assignments[np.minimum(np.arange(n_rows), len(assignments) - 1)]
        return out  # a repeated assignment cannot change a minimum

    right = None if state_set.right is None else pad(state_set.right, n_right)
    return pad(state_set.left, n_left), right


@dataclass(frozen=True)
class _Block:
    members: np.ndarray  # (R,) chain indices
    set_index: np.ndarray  # (R,) into left/right
    left: np.ndarray  # (S, CL, K)
    right: np.ndarray | None  # (S, CR, K)

    def min_charge(self, p: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """min |p . v| for proposals ``p`` (A, n, K) of the block rows ``rows`` (A,). Returns (A, n)."""
        width = self.left.shape[1] + (0 if self.right is None else self.right.shape[1])
        step = max(1, _CHUNK // max(1, p.shape[1] * width * p.shape[2]))
        out = np.empty(p.shape[:2])
        for start in range(0, len(rows), step):
            part = slice(start, start + step)
            sets = self.set_index[rows[part]]
            out[part] = _min_abs_charge(
                p[part], self.left[sets], None if self.right is None else self.right[sets]
            )
        return out


def _blocks(
    members: np.ndarray, set_ids: np.ndarray, sets: Sequence[States], width: int, n: int
) -> list[_Block]:
    """Partition chains ``members`` (element sets ``set_ids``, indices into ``sets``) into blocks.

    Sets are sorted by assignment shape and cut into contiguous runs minimising the estimated cost
    (pass overhead + rows x n x assignments x width): a small dynamic programme over distinct shapes.
    """
    unique, counts = np.unique(set_ids, return_counts=True)
    sets_of_shape: dict[tuple[int, int], list[int]] = {}
    rows_of_shape: dict[tuple[int, int], int] = {}
    for set_id, count in zip(unique.tolist(), counts.tolist(), strict=True):
        state_set = _state_set(sets[set_id])
        shape = (len(state_set.left), 0 if state_set.right is None else len(state_set.right))
        sets_of_shape.setdefault(shape, []).append(set_id)
        rows_of_shape[shape] = rows_of_shape.get(shape, 0) + count
    local = np.full(len(sets), -1)
    blocks = []
    for mitm in (False, True):  # direct and meet-in-the-middle sets need different passes
        shapes = sorted((shape for shape in sets_of_shape if (shape[1] > 0) == mitm), key=sum)
        cost = np.full(len(shapes) + 1, np.inf)
        cost[0], cut = 0.0, np.zeros(len(shapes) + 1, dtype=int)
        for end in range(1, len(shapes) + 1):
            max_left = max_right = n_rows = 0
            for start in range(end - 1, -1, -1):
                max_left, max_right = max(max_left, shapes[start][0]), max(max_right, shapes[start][1])
                n_rows += rows_of_shape[shapes[start]]
                total = cost[start] + _BLOCK_OVERHEAD + n_rows * n * width * (max_left + max_right)
                if total < cost[end]:
                    cost[end], cut[end] = total, start
        end = len(shapes)
        while end > 0:
            run = shapes[cut[end] : end]
            chosen = sorted(set_id for shape in run for set_id in sets_of_shape[shape])
            n_left, n_right = max(shape[0] for shape in run), max(shape[1] for shape in run)
            padded = [_padded(sets[set_id], n_left, n_right, width) for set_id in chosen]
            local[chosen] = np.arange(len(chosen))
            in_block = np.isin(set_ids, chosen)
            blocks.append(
                _Block(
                    members[in_block],
                    local[set_ids[in_block]],
                    np.stack([left for left, _ in padded]),
                    np.stack([right for _, right in padded]) if mitm else None,
                )
            )
            end = cut[end]
    return blocks


# ----------------------------------------------------------------------------------------------------------
# Batch layout


@dataclass(frozen=True)
class _Layout:
    """Element sets of the rows of a thresholded (N, V) batch, rows compressed to their elements."""

    set_of_row: np.ndarray  # (N,) index into sets
    sets: tuple[States, ...]  # oxidation states of each distinct element set
    set_cols: tuple[tuple[int, ...], ...]  # vocabulary columns of each distinct element set
    cols: np.ndarray  # (N, K) vocabulary column of each slot (0 where masked)
    mask: np.ndarray  # (N, K) slot holds an element of the row
    has_states: np.ndarray  # (N,) non-empty and every element has a state

    def compressed(self, x: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return np.where(self.mask[rows], x[rows[:, None], self.cols[rows]], 0.0)

    def can_neutralise(self, floor: float) -> np.ndarray:
        return np.array([_can_neutralise(states, floor) for states in self.sets], dtype=bool)[self.set_of_row]


def _layout(kept: np.ndarray, vocab: Vocabulary, table: OxidationTable) -> _Layout:
    present = kept > 0
    unique, set_of_row = np.unique(present, axis=0, return_inverse=True)
    set_cols = tuple(tuple(int(c) for c in np.flatnonzero(s)) for s in unique)
    sets = tuple(tuple(oxidation_states(vocab.symbols[c], table) for c in cols) for cols in set_cols)
    width = max(1, int(present.sum(axis=1).max(initial=0)))
    # Present columns first, in vocabulary order (the order of each set's states).
    order = np.argsort(~present, axis=1, kind="stable")[:, :width]
    mask = np.take_along_axis(present, order, axis=1)
    set_of_row = set_of_row.reshape(-1)
    has_states = np.array([bool(s) and all(s) for s in sets], dtype=bool)[set_of_row]
    return _Layout(set_of_row, sets, set_cols, np.where(mask, order, 0), mask, has_states)


def _as_batch(x: np.ndarray, vocab: Vocabulary) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if x.ndim not in (1, 2) or x.shape[-1] != len(vocab):
        raise ValueError(f"fractions of shape {x.shape} do not match the vocabulary of {len(vocab)} elements")
    return np.atleast_2d(x)


def _valence(x: np.ndarray, layout: _Layout) -> np.ndarray:
    out = np.full(len(x), np.nan)
    rows = np.flatnonzero(layout.has_states)
    set_ids = layout.set_of_row[rows]
    for block in _blocks(rows, set_ids, layout.sets, layout.mask.shape[1], 1):
        p = layout.compressed(x, block.members)[:, None, :]
        out[block.members] = block.min_charge(p, np.arange(len(block.members)))[:, 0]
    return out


def valence(x: np.ndarray, vocab: Vocabulary, *, oxidation: OxidationTable = "common") -> np.ndarray:
    """min_v |v^T x| over one oxidation state per element present (x > 0). Shape (N,) or ().

    NaN where a row is empty or holds an element without oxidation states. Fractions are used as given
    (threshold first if needed).

    >>> vocab = Vocabulary(("O", "Fe"))
    >>> float(valence(np.array([4 / 7, 3 / 7]), vocab).round(3))  # Fe3O4: Fe would need +8/3
    0.143
    """
    _table_attribute(oxidation)
    batch = _as_batch(x, vocab)
    out = _valence(batch, _layout(batch, vocab, oxidation))
    return out if np.ndim(x) == 2 else out[0]


def charge_neutral(
    x: np.ndarray, vocab: Vocabulary, *, oxidation: OxidationTable = "common", tol: float = DEFAULT_TOL
) -> np.ndarray:
    """Whether ``valence(x) < tol`` (False for empty rows and elements without states). Shape (N,) or ()."""
    with np.errstate(invalid="ignore"):
        return valence(x, vocab, oxidation=oxidation) < tol


# ----------------------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class BalanceResult:
    """Outcome of ``balance`` for an (N, V) batch; all arrays read-only.

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
class _Prepared:
    kept: np.ndarray  # thresholded rows
    layout: _Layout
    raw: np.ndarray  # valence of kept
    feasible: np.ndarray  # a neutral composition with every element >= threshold exists
    todo: np.ndarray  # feasible and not neutral yet

    def result(
        self, x: np.ndarray, iterations: np.ndarray, method: Method, oxidation: OxidationTable, tol: float
    ) -> BalanceResult:
        after = _valence(x, self.layout)  # balancing keeps every element, so the layout still applies
        with np.errstate(invalid="ignore"):
            neutral = after < tol
        return BalanceResult(x, self.raw, after, neutral, ~self.feasible, iterations, method, oxidation)


def _prepare(
    x: np.ndarray, vocab: Vocabulary, threshold: float, oxidation: OxidationTable, tol: float
) -> _Prepared:
    _table_attribute(oxidation)
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol}")
    if not 0 <= threshold < 1:
        raise ValueError(f"threshold must be in [0, 1), got {threshold}")
    kept = threshold_fractions(_as_batch(x, vocab), threshold)
    layout = _layout(kept, vocab, oxidation)
    raw = _valence(kept, layout)
    feasible = layout.can_neutralise(threshold) & layout.has_states
    with np.errstate(invalid="ignore"):
        todo = feasible & ~(raw < tol)
    return _Prepared(kept, layout, raw, feasible, todo)


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


@functools.cache
def _fewest_coins(coins: tuple[int, ...], limit: int) -> np.ndarray:
    """Fewest positive integers from ``coins`` (with repetition) summing to 0..limit; inf if impossible."""
    fewest = np.full(limit + 1, np.inf)
    fewest[0] = 0.0
    for amount in range(1, limit + 1):
        fewest[amount] = min((fewest[amount - c] for c in coins if c <= amount), default=np.inf) + 1
    return fewest


@functools.cache
def _grid_feasible(states: States, unit: int, floor_units: int) -> bool:
    """Whether some counts c_i >= floor_units with sum c = unit and sum c_i v_i = 0 exist for some v.

    With d_i = c_i - floor_units and v_i = low + delta_i (low = min v): the spare units sum_i d_i go to
    elements at ``low`` at no cost, so the condition is that T = -floor_units * sum(v) - spare * low is
    a sum of at most ``spare`` of the positive deltas. Sets beyond direct enumeration count as feasible.
    """
    state_set = _state_set(states)
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
        raise ValueError(f"sigma must be positive, got {sigma}")
    if n_proposals < 1 or max_iterations < 0:
        raise ValueError(
            f"need n_proposals >= 1 and max_iterations >= 0, got {n_proposals}, {max_iterations}"
        )
    if decimals is not None and decimals < 0:
        raise ValueError(f"decimals must be None or >= 0, got {decimals}")
    prep = _prepare(x, vocab, threshold, oxidation, tol)
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
    for block in _blocks(np.arange(len(rows)), set_ids, layout.sets, width, 1):
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
            blocks, grouped = _blocks(live, set_ids[live], layout.sets, width, n_proposals), n_active
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


@functools.cache
def _count_vectors(k: int, max_count: int, max_atoms: int) -> np.ndarray:
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
    counts = _count_vectors(len(states), max_count, max_atoms)
    charge = counts @ _assignments(states).astype(np.int64).T  # (n, C), exact integers
    # One int64 key per pair (charge major), so np.unique works on a flat array.
    keys = np.unique((charge - charge.min(initial=0)) * len(counts) + np.arange(len(counts))[:, None])
    return keys % len(counts), keys // len(counts) + charge.min(initial=0)


@functools.cache
def _neutral_fractions(states: States, max_count: int, max_atoms: int, floor: float) -> np.ndarray:
    """Fractions of the primitive count vectors within bounds that are exactly neutral. Shape (n, k).

    Meet in the middle over (counts, states): each half lists its distinct (counts, charge) pairs, and
    pairs with opposite charges whose atoms fit in ``max_atoms`` are joined, so the work grows with the
    halves and the answer rather than with (count vectors x assignments).
    """
    k = len(states)
    if not _state_set(states).has_states or k > max_atoms:
        return np.zeros((0, k))
    if k == 1:
        return np.ones((1, 1)) if 0 in states[0] else np.zeros((0, 1))
    left_slots, right_slots = list(range(k // 2)), list(range(k // 2, k))
    halves = []
    for slots, others in ((left_slots, right_slots), (right_slots, left_slots)):
        half_states = tuple(states[s] for s in slots)
        rows, charge = _charged_half(half_states, max_count, max_atoms - len(others))
        halves.append((_count_vectors(len(slots), max_count, max_atoms - len(others)), rows, charge))
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
    fractions and come back with ``charge_neutral`` False. Rows already neutral within ``tol`` are kept.

    >>> vocab = Vocabulary(("O", "Fe"))
    >>> exact_balance(np.array([[0.58, 0.42]]), vocab).x.round(3).tolist()  # Fe0.42O0.58 -> Fe2O3
    [[0.6, 0.4]]
    """
    if max_atoms < 1 or (max_count is not None and max_count < 1):
        raise ValueError(f"max_atoms and max_count must be >= 1, got {max_atoms}, {max_count}")
    limit = max_atoms if max_count is None else min(max_count, max_atoms)
    prep = _prepare(x, vocab, threshold, oxidation, tol)
    layout, out = prep.layout, prep.kept.copy()
    for index in np.unique(layout.set_of_row[prep.todo]):
        candidates = _neutral_fractions(layout.sets[index], limit, max_atoms, threshold)
        if not len(candidates):
            continue
        rows = np.flatnonzero(prep.todo & (layout.set_of_row == index))
        cols = list(layout.set_cols[index])
        target = prep.kept[rows[:, None], cols]
        step = max(1, _CHUNK // len(candidates))
        for start in range(0, len(rows), step):
            part = slice(start, start + step)
            # |t - c|^2 up to the row constant |t|^2, which does not change the argmin
            distance = (candidates**2).sum(axis=1) - 2.0 * target[part] @ candidates.T
            out[rows[part][:, None], cols] = candidates[np.argmin(distance, axis=1)]
    return prep.result(out, np.zeros(len(out), dtype=int), "exact", oxidation, tol)


# ----------------------------------------------------------------------------------------------------------
# Entry point and SMACT


def balance(
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
    >>> balance(np.array([[0.6, 0.4]]), vocab, "none").valence_raw.round(2).tolist()
    [0.2]
    """
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
    if method == "none":
        prep = _prepare(x, vocab, threshold, oxidation, tol)
        return prep.result(prep.kept, np.zeros(len(prep.kept), dtype=int), "none", oxidation, tol)
    raise ValueError(f"unknown balancing method {method!r}; choose 'none', 'mh' or 'exact'")


@functools.lru_cache(maxsize=1 << 16)
def _smact_valid_one(formula: str, use_pauling_test: bool, include_alloys: bool) -> bool:
    if not formula.strip():
        return False
    try:
        return bool(smact_validity(formula, use_pauling_test=use_pauling_test, include_alloys=include_alloys))
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"SMACT cannot check formula {formula!r}: {err}") from err


def smact_valid(
    formulas: Sequence[str], *, use_pauling_test: bool = True, include_alloys: bool = True
) -> np.ndarray:
    """SMACT's charge-neutrality and electronegativity screen (``smact_validity``) per formula; cached.

    Empty formulas (nothing above threshold) are invalid. Defaults are SMACT's: all-metal compositions
    count as valid alloys.

    >>> smact_valid(["NaCl", "NaCl2", ""]).tolist()
    [True, False, False]
    """
    return np.array(
        [_smact_valid_one(str(f), use_pauling_test, include_alloys) for f in formulas], dtype=bool
    )
