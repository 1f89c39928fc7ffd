"""Oxidation states and valence: pymatgen's tables, every assignment of one state per element, and
min_v |v^T x| for batches of compositions.

The valence of a fraction vector x over the elements it contains is min_v |v^T x|, the minimum over
assignments v of one oxidation state per element; the paper's target pi(x) = max_v exp(-(v^T x)^2)
(eq. 4) is exp(-valence^2). A row is charge neutral when its valence is below ``tol``. Oxidation states
come from pymatgen, each table the one its own check ``Composition.oxi_state_guesses`` uses:
``common`` is ``Element.common_oxidation_states`` (checked with ``oxi_states_override`` set to them),
``all`` is ``Element.oxidation_states`` (``all_oxi_states=True``) and ``icsd`` is
``Element.icsd_oxidation_states``, or the common states where pymatgen's ICSD table has none (Xe, Au, Pt,
...), as ``oxi_state_guesses()`` does by default.

>>> vocab = Vocabulary(("O", "Na", "Cl", "Fe"))
>>> x = np.array([[0.0, 0.5, 0.5, 0.0], [0.6, 0.0, 0.0, 0.4], [0.0, 1 / 3, 2 / 3, 0.0]])
>>> charge_neutral(x, vocab).tolist()  # NaCl, Fe2O3, NaCl2
[True, True, False]
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pymatgen.core import Element

from stoichgen.chem.composition import Vocabulary
from stoichgen.errors import FormulaError, InputError, check_choice

OxidationTable = Literal["common", "all", "icsd"]
OXIDATION_TABLES: tuple[OxidationTable, ...] = ("common", "all", "icsd")


# |v^T x| below this is neutral. It is far below the smallest non-zero valence on the 2-decimal grid
# (0.01 with integer states), so there it means exactly zero, while float round-off of exact
# compositions (1/3, 2/3, ...) passes; for continuous walks it is the accepted residual charge per atom.
DEFAULT_TOL = 1e-3

_TABLE_ATTRIBUTE = {
    "common": "common_oxidation_states",
    "all": "oxidation_states",
    "icsd": "icsd_oxidation_states",
}
# Element sets with up to this many assignments are enumerated outright; beyond, meet in the middle
# (two half-enumerations and a sorted search), so "all"-table sets of 5-6 transition metals stay cheap.
_DIRECT_ASSIGNMENTS = 1024
_MAX_ASSIGNMENTS = 10**8
CHUNK = 1 << 22  # elements per temporary array (32 MiB of float64)
# Fixed cost of one padded numpy pass, in multiply-adds: rows are grouped into blocks of similar
# assignment counts when padding everything to the largest would cost more than extra passes.
_BLOCK_OVERHEAD = 200_000


# ----------------------------------------------------------------------------------------------------------
# Oxidation-state tables and assignments


def check_table(table: str) -> str:
    """The pymatgen ``Element`` attribute of an oxidation table; ``InputError`` for an unknown table."""
    return _TABLE_ATTRIBUTE[check_choice(table, OXIDATION_TABLES, "oxidation", "oxidation table")]


@functools.cache
def oxidation_states(symbol: str, table: OxidationTable = "common") -> tuple[int, ...]:
    """Sorted oxidation states of an element in a pymatgen table; empty for e.g. noble gases.

    >>> oxidation_states("Fe"), oxidation_states("Fe", "all")[:3], oxidation_states("He")
    ((2, 3), (-2, -1, 1), ())
    >>> oxidation_states("Xe", "icsd")  # none in pymatgen's ICSD table: its common ones, as oxi_state_guesses
    (2, 4, 6)
    """
    attribute = check_table(table)
    if not isinstance(symbol, str) or not Element.is_valid_symbol(symbol):
        raise FormulaError(f"unknown element symbol {symbol!r}")
    element = Element(symbol)
    states = getattr(element, attribute)
    if table == "icsd" and not states:
        # oxi_state_guesses() falls back to the common states where the ICSD table has none (Xe, Kr, Au,
        # Pt, Os, Tc, actinides): without the same fallback, XeF2 would be neutral by pymatgen's check
        # and unbalanceable here.
        states = element.common_oxidation_states
    return tuple(sorted({int(state) for state in states}))


States = tuple[tuple[int, ...], ...]  # oxidation states of each element of a set, in vocabulary order


def assignments(states: States, slots: Sequence[int] | None = None) -> np.ndarray:
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
class StateSet:
    """The assignments of one element set, as ``left[a] + right[b]`` (``right`` None: ``left`` has all)."""

    states: States
    left: np.ndarray  # (CL, k), zero on the right half's elements
    right: np.ndarray | None  # (CR, k), zero on the left half's elements
    left_slots: tuple[int, ...]
    right_slots: tuple[int, ...]

    @property
    def has_states(self) -> bool:
        return bool(self.states) and all(self.states)


@functools.lru_cache(maxsize=1024)  # bounded: its keys vary with every request
def assignment_set(states: States) -> StateSet:
    sizes = [len(s) for s in states]
    total = math.prod(sizes)
    if total == 0 or not states:
        return StateSet(states, np.zeros((1, len(states))), None, (), ())
    if total > _MAX_ASSIGNMENTS:
        raise InputError(
            f"{total} oxidation-state assignments for an element set with states {states}; "
            "raise the threshold or use a smaller oxidation table"
        )
    if total <= _DIRECT_ASSIGNMENTS:
        return StateSet(states, assignments(states), None, tuple(range(len(states))), ())
    # Balanced halves: largest state lists first, each to the half with the smaller product so far.
    halves: tuple[list[int], list[int]] = ([], [])
    for slot in sorted(range(len(states)), key=lambda s: -sizes[s]):
        products = [math.prod(sizes[s] for s in half) for half in halves]
        halves[int(products[1] < products[0])].append(slot)
    left, right = sorted(halves[0]), sorted(halves[1])
    return StateSet(states, assignments(states, left), assignments(states, right), tuple(left), tuple(right))


def _half_stats(assignments: np.ndarray, slots: Sequence[int]) -> tuple[np.ndarray, ...]:
    """Sum, min and max of each half-assignment over its own slots (empty half: 0, +inf, -inf)."""
    own = assignments[:, list(slots)]
    return own.sum(axis=1), own.min(axis=1, initial=np.inf), own.max(axis=1, initial=-np.inf)


@functools.lru_cache(maxsize=4096)  # bounded: its keys vary with every request
def can_neutralise(states: States, floor: float) -> bool:
    """Whether v^T x = 0 for some assignment v and fractions x_i >= floor summing to 1 (x_i > 0 if 0)."""
    state_set = assignment_set(states)
    if not state_set.has_states:
        return False
    # v^T x is linear on the simplex {x_i >= floor}; its vertices put the spare mass on one element, so
    # the reachable range is floor * sum(v) + spare * [min(v), max(v)]. Checked for all left x right.
    spare = 1.0 - len(states) * floor
    left_sum, left_min, left_max = _half_stats(state_set.left, state_set.left_slots)
    right = state_set.left[:1] * 0 if state_set.right is None else state_set.right
    right_sum, right_min, right_max = _half_stats(right, state_set.right_slots)
    step = max(1, CHUNK // len(right))
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


def min_abs_charge(p: np.ndarray, left: np.ndarray, right: np.ndarray | None) -> np.ndarray:
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


@functools.lru_cache(maxsize=1024)  # bounded: its keys vary with every request
def _padded(states: States, n_left: int, n_right: int, width: int) -> tuple[np.ndarray, np.ndarray | None]:
    """A set's assignments padded to (n_left, width) / (n_right, width) by repeating the first one."""
    state_set = assignment_set(states)

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
        step = max(1, CHUNK // max(1, p.shape[1] * width * p.shape[2]))
        out = np.empty(p.shape[:2])
        for start in range(0, len(rows), step):
            part = slice(start, start + step)
            sets = self.set_index[rows[part]]
            out[part] = min_abs_charge(
                p[part], self.left[sets], None if self.right is None else self.right[sets]
            )
        return out


def charge_blocks(
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
        state_set = assignment_set(sets[set_id])
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
class BatchLayout:
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
        return np.array([can_neutralise(states, floor) for states in self.sets], dtype=bool)[self.set_of_row]


def batch_layout(kept: np.ndarray, vocab: Vocabulary, table: OxidationTable) -> BatchLayout:
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
    return BatchLayout(set_of_row, sets, set_cols, np.where(mask, order, 0), mask, has_states)


def as_batch(x: np.ndarray, vocab: Vocabulary) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if x.ndim not in (1, 2) or x.shape[-1] != len(vocab):
        raise InputError(f"fractions of shape {x.shape} do not match the vocabulary of {len(vocab)} elements")
    return np.atleast_2d(x)


def layout_valence(x: np.ndarray, layout: BatchLayout) -> np.ndarray:
    out = np.full(len(x), np.nan)
    rows = np.flatnonzero(layout.has_states)
    set_ids = layout.set_of_row[rows]
    for block in charge_blocks(rows, set_ids, layout.sets, layout.mask.shape[1], 1):
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
    check_table(oxidation)
    batch = as_batch(x, vocab)
    out = layout_valence(batch, batch_layout(batch, vocab, oxidation))
    return out if np.ndim(x) == 2 else out[0]


def charge_neutral(
    x: np.ndarray, vocab: Vocabulary, *, oxidation: OxidationTable = "common", tol: float = DEFAULT_TOL
) -> np.ndarray:
    """Whether ``valence(x) < tol`` (False for empty rows and elements without states). Shape (N,) or ()."""
    with np.errstate(invalid="ignore"):
        return valence(x, vocab, oxidation=oxidation) < tol


# Rows beyond this many assignments are not measured: generated junk with many elements would take
# seconds to minutes each.
MAX_ASSIGNMENTS = 10**6


def affordable_rows(present: np.ndarray, vocab: Vocabulary, table: OxidationTable) -> np.ndarray:
    """Rows (N, V) whose oxidation-state assignments number at most ``MAX_ASSIGNMENTS`` (or none). (N,)."""
    counts = np.array([len(oxidation_states(s, table)) for s in vocab.symbols], dtype=float)
    log_product = present @ np.log(np.maximum(counts, 1.0))
    return (present & (counts == 0)).any(axis=1) | (log_product <= math.log(MAX_ASSIGNMENTS) + 1e-9)
