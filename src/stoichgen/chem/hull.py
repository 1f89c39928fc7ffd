"""Where a composition would sit on the convex hull of known compounds: ``e_above_hull`` and the
competing products, on pymatgen's ``PhaseDiagram``.

Every known composition is a ``PDEntry`` whose energy is its formation energy per atom times its atoms;
every element gets a zero-energy reference (an element's ground state has formation energy 0 by
definition, and a data set's elemental rows are often other polymorphs: Ba +0.74, C +0.44 eV/atom).
One diagram per chemical system, built on first use and cached, so a batch in one system pays once.

>>> hull = Hull.from_formulas(["Li2O", "LiO2"], [-2.1, -1.0])
>>> result = hull.query("Li2O2", -1.5)
>>> round(result.e_above_hull, 3), result.decomposition, result.n_known
(0.075, 'Li2O + O2', 2)
>>> round(hull.query("Li2O2", -1.7).e_above_hull, 3)  # below the known hull: a would-be new stable phase
-0.125
>>> hull.query("XeF2", -1.0).reason
'no known compound holds F, Xe'

"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np
from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
from pymatgen.core import Composition
from scipy.stats import norm

from stoichgen.chem.composition import parse_formula
from stoichgen.chem.validity import SYMBOL
from stoichgen.data import read_table
from stoichgen.errors import DataError, FormulaError, InputError

__all__ = ["Hull", "HullResult", "MAX_SYSTEM_ELEMENTS", "p_stable", "read_hull"]

MAX_SYSTEM_ELEMENTS = 10  # 2^10 subsystems to gather; no MP composition has more than 8 elements
BAD_ROWS_SHOWN = 50  # a reference's bad rows named in one error


@dataclass(frozen=True)
class HullResult:
    """``e_above_hull`` in eV/atom (NaN with ``reason`` when it cannot be computed), the competing
    products (``A + B``), and how many known compounds the chemical system holds."""

    e_above_hull: float
    decomposition: str
    n_known: int
    reason: str = ""


class Hull:
    """Known compounds (reduced formulas and formation energies per atom), queried per chemical system.

    Entries are made only for the systems queried, so a hull over 49,543 compounds costs nothing until
    it is asked about one system.
    """

    def __init__(self, formulas: Sequence[str], energies: Sequence[float]) -> None:
        if len(formulas) != len(energies):
            raise InputError(f"{len(formulas)} known formulas but {len(energies)} energies")
        self._formulas = list(formulas)
        self._energies = [float(e) for e in energies]
        self._by_system: dict[frozenset[str], list[int]] = {}
        for row, (formula, energy) in enumerate(zip(self._formulas, self._energies, strict=True)):
            if not math.isfinite(energy):
                raise InputError(f"known compound {formula!r}: energy {energy!r} is not finite")
            self._by_system.setdefault(frozenset(SYMBOL.findall(formula)), []).append(row)
        self.elements = frozenset().union(*self._by_system) if self._by_system else frozenset()
        self._diagram = functools.lru_cache(maxsize=4096)(self._build)
        self._planes = functools.lru_cache(maxsize=4096)(self._facet_planes)

    @classmethod
    def from_formulas(cls, formulas: Sequence[str], energies: Sequence[float]) -> Hull:
        return cls([parse_formula(f).formula.replace(" ", "") for f in formulas], energies)

    def __len__(self) -> int:
        return len(self._formulas)

    def pairs_covered(self, system: frozenset[str]) -> bool:
        """Whether every pair of the system's elements has a known binary compound: where one is missing,
        the hull knows nothing of that pair's bonding, and anything bound would look stable.

        >>> Hull.from_formulas(["Li2O", "MnO"], [-2.0, -2.0]).pairs_covered(frozenset({"Li", "Mn", "O"}))
        False
        """
        return all(frozenset(pair) in self._by_system for pair in combinations(sorted(system), 2))

    def known_in(self, system: frozenset[str]) -> list[PDEntry]:
        """Known entries whose elements all lie in ``system``."""
        if len(system) > MAX_SYSTEM_ELEMENTS:
            raise InputError(f"a chemical system of {len(system)} elements (at most {MAX_SYSTEM_ELEMENTS})")
        members = sorted(system)
        rows: list[int] = []
        for k in range(1, len(members) + 1):
            for subset in combinations(members, k):
                rows += self._by_system.get(frozenset(subset), [])
        entries = []
        for row in rows:
            comp = Composition(self._formulas[row])
            entries.append(PDEntry(comp, self._energies[row] * comp.num_atoms))
        return entries

    def _build(self, system: frozenset[str]) -> tuple[PhaseDiagram, int]:
        known = self.known_in(system)
        references = [PDEntry(Composition(symbol), 0.0) for symbol in sorted(system)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return PhaseDiagram(known + references), len(known)

    def diagram(self, system: frozenset[str]) -> tuple[PhaseDiagram, int]:
        """The system's phase diagram (cached) and its number of known compounds."""
        return self._diagram(frozenset(system))

    def query(self, formula: str | Composition, energy: float) -> HullResult:
        """``e_above_hull`` of a composition with formation energy ``energy`` (eV/atom); never raises for
        a bad row: the reason comes back instead."""
        try:
            comp = formula if isinstance(formula, Composition) else parse_formula(formula)
        except FormulaError as err:
            return HullResult(math.nan, "", 0, str(err))
        if isinstance(energy, bool) or not isinstance(energy, int | float) or not math.isfinite(energy):
            return HullResult(math.nan, "", 0, f"energy {energy!r} is not a finite number")
        system = frozenset(el.symbol for el in comp)
        unknown = sorted(system - self.elements)
        if unknown:
            return HullResult(math.nan, "", 0, f"no known compound holds {', '.join(unknown)}")
        if len(system) > MAX_SYSTEM_ELEMENTS:
            return HullResult(math.nan, "", 0, f"{len(system)} elements (at most {MAX_SYSTEM_ELEMENTS})")
        diagram, n_known = self.diagram(system)
        entry = PDEntry(comp, energy * comp.num_atoms)
        decomposition, e_above = diagram.get_decomp_and_e_above_hull(entry, allow_negative=True)
        products = sorted(decomposition, key=lambda e: (-decomposition[e], e.composition.reduced_formula))
        text = " + ".join(e.composition.reduced_formula for e in products)
        return HullResult(float(e_above), text, n_known)

    def e_above_hull_many(
        self, elements: Sequence[str], fractions: np.ndarray, energies: np.ndarray
    ) -> np.ndarray:
        """``e_above_hull`` of many compositions of one chemical system at once: fractions (M, k) over
        ``elements``, formation energies (M,) in eV/atom. Shape (M,).

        The lower hull is convex, so its energy at x is the largest of its facets' planes at x: one
        product per facet instead of one pymatgen query per composition (the same numbers, tested).
        """
        diagram, _ = self.diagram(frozenset(elements))
        order = [list(elements).index(el.symbol) for el in diagram.elements]
        x = np.asarray(fractions, dtype=float)[:, order]  # (M, k) in the diagram's element order
        planes = self._planes(frozenset(elements))  # (F, k)
        return np.asarray(energies, dtype=float) - (x @ planes.T).max(axis=1)

    def _facet_planes(self, system: frozenset[str]) -> np.ndarray:
        diagram, _ = self.diagram(system)
        entries = diagram.qhull_entries
        rows = []
        for facet in diagram.facets:
            vertices = np.array([[entries[i].composition.get_atomic_fraction(el) for el in diagram.elements]
                                 for i in facet])  # fmt: skip
            energy = np.array([diagram.get_form_energy_per_atom(entries[i]) for i in facet])
            rows.append(np.linalg.lstsq(vertices, energy, rcond=None)[0])
        return np.array(rows)  # (F, k): the hull energy at x is max over facets of x . plane


def read_hull(
    path: Path | str, composition_column: str = "composition", property_column: str = "property"
) -> Hull:
    r"""Known compounds from a CSV (a formula and its formation energy in eV/atom per row): the hull that
    ``generate --reference`` and ``hull --reference`` place candidates against.

    Every row must be usable, since a compound left out silently would move the hull: rows with an
    unparseable formula or an energy that is not a finite number (``nan`` included) are refused together,
    each named by its row as ``stoichgen hull`` names its input rows (the header is row 1), in one
    ``DataError`` whose field is ``reference``.
    Rows with the same formula are all kept (polymorphs: the hull takes the lowest).

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "known.csv"
    >>> _ = path.write_text("composition,property\nLi2O,-2.1\nLiO2,-1.0\n")
    >>> round(read_hull(path).query("Li2O2", -1.5).e_above_hull, 3)
    0.075
    >>> _ = path.write_text("composition,property\nLi2O,nan\nXx2O,-1\n")
    >>> try:
    ...     read_hull(path)
    ... except DataError as err:
    ...     print(err.field, str(err).splitlines()[1])
    reference   row 2: 'Li2O': energy 'nan' is not a finite number
    """
    try:
        table = read_table(path, composition_column, property_column)
    except DataError as err:
        raise DataError(str(err), field="reference") from None
    formulas: list[str] = []
    energies: list[float] = []
    bad: list[str] = []
    rows = zip(table[composition_column], table[property_column], strict=True)
    for line, (formula, value) in enumerate(rows, start=2):  # the header is row 1
        try:
            comp = parse_formula(str(formula))
        except FormulaError as err:
            bad.append(f"row {line}: {formula!r}: {err}")
            continue
        try:
            energy = float(str(value).strip())
        except ValueError:
            bad.append(f"row {line}: {formula!r}: energy {value!r} is not a number")
            continue
        if not math.isfinite(energy):
            bad.append(f"row {line}: {formula!r}: energy {value!r} is not a finite number")
            continue
        formulas.append(comp.formula.replace(" ", ""))
        energies.append(energy)
    if bad:
        more = f"\n  ... and {len(bad) - BAD_ROWS_SHOWN} more" if len(bad) > BAD_ROWS_SHOWN else ""
        listed = "\n".join(f"  {row}" for row in bad[:BAD_ROWS_SHOWN])
        raise DataError(f"{path}: {len(bad)} bad rows of known compounds; fix or remove them:\n"
                        f"{listed}{more}", field="reference")  # fmt: skip
    return Hull(formulas, energies)


def p_stable(e_above_hull: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """P(e_above_hull <= 0) when it is normal with mean ``e_above_hull`` and sd ``spread`` (the hull is
    fixed, so the energy's spread is e_above_hull's); NaN where either is NaN (no hull). Shape (N,).

    >>> p_stable(np.array([0.0, -0.1, np.nan]), np.array([0.1, 0.1, 0.1])).round(3).tolist()
    [0.5, 0.841, nan]
    """
    e_above_hull, spread = np.asarray(e_above_hull, dtype=float), np.asarray(spread, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return norm.cdf(-e_above_hull / spread)
