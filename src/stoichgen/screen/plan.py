"""What a screen covers and how it is cut into chunks: ``ScreenSpec``, ``plan``.

Every reduced formula over subsets of the given elements (between ``min_elements`` and ``max_elements``
of them, each count >= 1, at most ``max_atoms`` atoms) that the candidate space of the run's oxidation
table accepts (``space.assign.TABLES``: exactly neutral for one state per element with cations less
electronegative than anions, or metals only; ``space.candidate_counts``), or a user's own list of
formulas. Chunks are
whole element sets packed up to ``chunk_rows`` rows (a larger set cut into slices), or ``chunk_rows``
rows of the list; their order is the output's order.

>>> spec = ScreenSpec(elements=("Li", "Fe", "O"), max_atoms=8, chunk_rows=4)
>>> [len(c.pieces) for c in plan(spec)], sum(c.rows for c in plan(spec))
([1, 1, 1, 1, 1, 3, 1, 1], 29)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from itertools import combinations

from pymatgen.core import Element

from stoichgen.chem.oxidation import OXIDATION_TABLES
from stoichgen.errors import StoichgenError, check_choice, check_int, check_number
from stoichgen.space.assign import TABLES
from stoichgen.space.formulas import MAX_ENUMERATION_ATOMS, candidate_counts
from stoichgen.space.score import OBJECTIVES

__all__ = ["CHUNK_ROWS", "Chunk", "Piece", "ScreenError", "ScreenSpec", "describe_space", "plan", "subsets"]

CHUNK_ROWS = 50_000  # rows per chunk: seconds of work, tens of MB
MAX_SCREEN_ELEMENTS = 40  # elements to choose subsets from


class ScreenError(StoichgenError):
    """A screen that cannot be run (bad elements, a different screen's parts in the way)."""


@dataclass(frozen=True)
class ScreenSpec:
    """What to screen. Everything that decides the output is here (its fingerprint guards resuming)."""

    elements: tuple[str, ...] = ()  # empty with candidates
    min_elements: int = 2
    max_elements: int = 4
    max_atoms: int = 20
    oxidation: str = "common"
    target: float | None = None
    objective: str = "target"
    top: int | None = None
    candidates: tuple[str, ...] = ()  # a user's formulas instead of the enumeration
    chunk_rows: int = CHUNK_ROWS
    surrogate: str = ""  # a run directory; empty: the bundled surrogate

    def __post_init__(self) -> None:
        check_choice(self.oxidation, OXIDATION_TABLES, "oxidation", "oxidation table", ScreenError)
        check_choice(self.objective, OBJECTIVES, "objective", error=ScreenError)
        check_int(self.chunk_rows, "chunk_rows", 1, 10_000_000)
        if self.target is not None:
            check_number(self.target, "target")
        if self.top is not None:
            check_int(self.top, "top", 1, 10_000_000)
            if self.target is None and self.objective == "target":
                raise ScreenError("top needs a score: give a target, or the stability objective", field="top")
        if self.candidates:
            return
        if not self.elements:
            raise ScreenError("give the elements to screen (or a list of candidates)", field="elements")
        if len(set(self.elements)) != len(self.elements) or len(self.elements) > MAX_SCREEN_ELEMENTS:
            raise ScreenError(f"give 2 to {MAX_SCREEN_ELEMENTS} different elements, got {self.elements}",
                              field="elements")  # fmt: skip
        unknown = [s for s in self.elements if not isinstance(s, str) or not Element.is_valid_symbol(s)]
        if unknown:
            raise ScreenError(f"unknown element symbols {', '.join(map(repr, unknown))}", field="elements")
        check_int(self.min_elements, "min_elements", 1, len(self.elements))
        check_int(self.max_elements, "max_elements", self.min_elements, MAX_SCREEN_ELEMENTS)
        check_int(self.max_atoms, "max_atoms", 2, MAX_ENUMERATION_ATOMS)

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Piece:
    """Rows ``start:stop`` of one element set's neutral formulas (``space.candidate_counts`` order)."""

    elements: tuple[str, ...]
    start: int
    stop: int


@dataclass(frozen=True)
class Chunk:
    """One unit of work: pieces of the enumeration, or rows ``start:stop`` of the candidates list."""

    index: int
    pieces: tuple[Piece, ...] = ()
    start: int = 0
    stop: int = 0
    rows: int = field(default=0, compare=False)


def subsets(spec: ScreenSpec) -> list[tuple[str, ...]]:
    """The element sets screened, smallest first, each in the order the elements were given."""
    return [
        c for k in range(spec.min_elements, spec.max_elements + 1) for c in combinations(spec.elements, k)
    ]


def plan(spec: ScreenSpec) -> list[Chunk]:
    """The chunks of a screen, in output order: whole element sets packed up to ``chunk_rows`` rows, a
    larger set cut into slices. Counting the formulas of every set is cheap beside scoring them."""
    if spec.candidates:
        n = len(spec.candidates)
        return [
            Chunk(i, (), start, min(start + spec.chunk_rows, n), min(spec.chunk_rows, n - start))
            for i, start in enumerate(range(0, n, spec.chunk_rows))
        ]
    chunks: list[Chunk] = []
    pieces: list[Piece] = []
    size = 0
    for elements in subsets(spec):
        total = len(candidate_counts(elements, spec.max_atoms, TABLES[spec.oxidation]))
        start = 0
        while start < total:
            stop = min(total, start + spec.chunk_rows - size)
            pieces.append(Piece(elements, start, stop))
            size += stop - start
            start = stop
            if size == spec.chunk_rows:
                chunks.append(Chunk(len(chunks), tuple(pieces), rows=size))
                pieces, size = [], 0
    if pieces:
        chunks.append(Chunk(len(chunks), tuple(pieces), rows=size))
    return chunks


def describe_space(spec: ScreenSpec, chunks: Sequence[Chunk]) -> str:
    """One line: how many rows, from what."""
    total = sum(c.rows for c in chunks)
    if spec.candidates:
        return f"{total:,} candidates in {len(chunks)} chunks"
    return (
        f"{total:,} neutral formulas over {len(subsets(spec)):,} element sets of {','.join(spec.elements)} "
        f"({spec.min_elements}-{spec.max_elements} elements, at most {spec.max_atoms} atoms, "
        f"{spec.oxidation} oxidation states) in {len(chunks)} chunks"
    )
