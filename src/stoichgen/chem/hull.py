"""Where a composition would sit on the convex hull of known compounds: ``e_above_hull`` and the
competing products, on pymatgen's ``PhaseDiagram``.

Every known composition is a ``PDEntry`` whose energy is its formation energy per atom times its atoms;
every element gets a zero-energy reference (an element's ground state has formation energy 0 by
definition, and a data set's elemental rows are often other polymorphs: Ba +0.74, C +0.44 eV/atom).
One lower hull per chemical system, built on first use and cached, so a batch in one system pays once.

Two paths give the same numbers (tested against each other): ``Hull.query`` asks pymatgen's
``PhaseDiagram`` about one row, the readable reference; ``Hull.query_many`` and ``e_above_hull_many``
build the same lower hull with scipy's qhull directly (pymatgen's construction, without its per-entry
bookkeeping: about 0.5 ms a system instead of 18 ms) and place many rows at once.

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
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np
from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
from pymatgen.core import Composition
from scipy.spatial import ConvexHull
from scipy.stats import norm
from tqdm import tqdm

from stoichgen.chem.composition import parse_formula
from stoichgen.chem.validity import SYMBOL
from stoichgen.data import read_table
from stoichgen.errors import DataError, FormulaError, InputError

__all__ = ["Hull", "HullResult", "MAX_SYSTEM_ELEMENTS", "p_stable", "read_hull"]

FORMATION_ENERGY_TOL = PhaseDiagram.formation_energy_tol  # pymatgen's: below it, a compound joins the hull
NUMERICAL_TOL = PhaseDiagram.numerical_tol  # pymatgen's: smaller amounts are not products
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


@dataclass(frozen=True)
class LowerHull:
    """The lower convex hull of one chemical system, as pymatgen's ``PhaseDiagram`` builds it: the
    lowest entry of each composition whose formation energy is below zero, plus the elements.

    ``vertices`` (V, k) atomic fractions over ``elements`` and their ``energies`` (V,) in eV/atom;
    ``labels`` their reduced formulas; ``facets`` (F, k) vertex indices of each simplex; ``planes``
    (F, k) each facet's energy as a linear function of the fractions (the hull at x is max_f x . plane_f,
    since the lower hull is convex); ``n_known`` the known compounds of the system and its subsystems.
    """

    elements: tuple[str, ...]
    vertices: np.ndarray
    energies: np.ndarray
    labels: tuple[str, ...]
    facets: np.ndarray
    planes: np.ndarray
    n_known: int


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
        self._energy_array = np.array(self._energies, dtype=float)  # (N,)
        self._formula_array = np.array(self._formulas, dtype=object)  # (N,)
        self._diagram = functools.lru_cache(maxsize=4096)(self._build)
        self._lower = functools.lru_cache(maxsize=16384)(self._build_lower)
        # atomic fractions of the known rows over all their elements, each row parsed when first needed
        self._columns = {symbol: i for i, symbol in enumerate(sorted(self.elements))}
        self._fraction_matrix = np.zeros((len(self._formulas), len(self._columns)))  # (N, E)
        self._parsed = np.zeros(len(self._formulas), dtype=bool)  # (N,)

    @classmethod
    def from_formulas(cls, formulas: Sequence[str], energies: Sequence[float]) -> Hull:
        return cls([parse_formula(f).formula.replace(" ", "") for f in formulas], energies)

    def __len__(self) -> int:
        return len(self._formulas)

    def reduced_formulas(self) -> frozenset[str]:
        """pymatgen's reduced formula of every known compound.

        >>> sorted(Hull.from_formulas(["Li4O2", "LiO2"], [-2.1, -1.0]).reduced_formulas())
        ['Li2O', 'LiO2']
        """
        return frozenset(reduced_formula(f) for f in self._formulas)

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
        entries = []
        for row in self._rows_in(system):
            comp = Composition(self._formulas[row])
            entries.append(PDEntry(comp, self._energies[row] * comp.num_atoms))
        return entries

    def _rows_in(self, system: frozenset[str]) -> list[int]:
        members = sorted(system)
        rows: list[int] = []
        for k in range(1, len(members) + 1):
            for subset in combinations(members, k):
                rows += self._by_system.get(frozenset(subset), [])
        return rows

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
        """``e_above_hull`` of a composition with formation energy ``energy`` (eV/atom) from pymatgen's
        ``PhaseDiagram``; never raises for a bad row: the reason comes back instead."""
        checked = self._check(formula, energy)
        if isinstance(checked, HullResult):
            return checked
        comp, system = checked
        diagram, n_known = self.diagram(system)
        entry = PDEntry(comp, energy * comp.num_atoms)
        decomposition, e_above = diagram.get_decomp_and_e_above_hull(entry, allow_negative=True)
        products = sorted(
            decomposition, key=lambda e: (round(-decomposition[e], 9), e.composition.reduced_formula)
        )
        text = " + ".join(e.composition.reduced_formula for e in products)
        return HullResult(float(e_above), text, n_known)

    def lower_hull(self, system: frozenset[str]) -> LowerHull:
        """The system's lower hull (cached): pymatgen's construction with scipy's qhull, minus pymatgen's
        per-entry bookkeeping, which costs about 30 times the hull itself.

        >>> hull = Hull.from_formulas(["Li2O", "LiO2"], [-2.1, -1.0])
        >>> lower = hull.lower_hull(frozenset({"Li", "O"}))
        >>> sorted(reduced_formula(label) for label in lower.labels), lower.n_known
        (['Li', 'Li2O', 'LiO2', 'O2'], 2)
        """
        system = frozenset(system)
        if len(system) > MAX_SYSTEM_ELEMENTS:
            raise InputError(f"a chemical system of {len(system)} elements (at most {MAX_SYSTEM_ELEMENTS})")
        return self._lower(system)

    def _known_fractions(self, rows: np.ndarray, elements: Sequence[str]) -> np.ndarray:
        """Atomic fractions of known ``rows`` over ``elements``. Shape (R, k)."""
        for row in rows[~self._parsed[rows]]:
            for symbol, fraction in _fractions(self._formulas[row]).items():
                self._fraction_matrix[row, self._columns[symbol]] = fraction
            self._parsed[row] = True
        out = np.zeros((len(rows), len(elements)))  # (R, k); an element no known compound holds stays 0
        known = [i for i, el in enumerate(elements) if el in self._columns]
        out[:, known] = self._fraction_matrix[np.ix_(rows, [self._columns[elements[i]] for i in known])]
        return out

    def _build_lower(self, system: frozenset[str]) -> LowerHull:
        elements = tuple(sorted(system))
        k = len(elements)
        # every element at zero (as in _build), then the known compounds; each composition's lowest entry
        rows = np.array(self._rows_in(system), dtype=np.int64)
        points = np.vstack([np.eye(k), self._known_fractions(rows, elements)])  # (R + k, k)
        energies = np.concatenate([np.zeros(k), self._energy_array[rows]])  # (R + k,)
        formulas = np.concatenate([np.array(elements, dtype=object), self._formula_array[rows]])
        by_energy = np.argsort(energies, kind="stable")
        _, first = np.unique(points[by_energy].round(12), axis=0, return_index=True)
        lowest = by_energy[np.sort(first)]  # the first of each composition in energy order: its lowest
        points, energies, formulas = points[lowest], energies[lowest], formulas[lowest]
        corners = np.array([energies[(points[:, i] == 1.0)].min() for i in range(k)])  # (k,)
        # as pymatgen: only compounds below the elements' plane, plus the elements themselves
        keep = (points @ corners - energies > FORMATION_ENERGY_TOL) | (points.max(axis=1) == 1.0)
        points, energies, labels = points[keep], energies[keep], list(formulas[keep])
        if k == 1:
            facets = np.array([[int(np.argmin(energies))]])
        else:
            # pymatgen's extra point above the middle keeps qhull full-dimensional; facets through it are
            # the upper hull, and flat (zero-volume) ones are dropped, as in PhaseDiagram._compute
            data = np.column_stack([points[:, 1:], energies])  # (P, k)
            extra = np.full(k, 1.0 / k)
            extra[-1] = data.max() + 1
            data = np.vstack([data, extra])
            simplices = ConvexHull(data, qhull_options="Qt i").simplices
            simplices = simplices[(simplices != len(data) - 1).all(axis=1)]
            lifted = data[simplices]  # (F, k, k)
            lifted[:, :, -1] = 1.0
            facets = simplices[np.abs(np.linalg.det(lifted)) > 1e-14]
        planes = np.linalg.solve(points[facets], energies[facets][..., None])[..., 0]  # (F, k)
        n_known = sum(len(self._by_system.get(frozenset(subset), ()))
                      for size in range(1, k + 1) for subset in combinations(elements, size))  # fmt: skip
        return LowerHull(elements, points, energies, tuple(labels), facets, planes, n_known)

    def e_above_hull_many(
        self, elements: Sequence[str], fractions: np.ndarray, energies: np.ndarray
    ) -> np.ndarray:
        """``e_above_hull`` of many compositions of one chemical system at once: fractions (M, k) over
        ``elements``, formation energies (M,) in eV/atom. Shape (M,).

        The lower hull is convex, so its energy at x is the largest of its facets' planes at x: one
        product per facet instead of one pymatgen query per composition (the same numbers, tested).
        """
        lower = self.lower_hull(frozenset(elements))
        order = [list(elements).index(el) for el in lower.elements]
        x = np.asarray(fractions, dtype=float)[:, order]  # (M, k) in the hull's element order
        return np.asarray(energies, dtype=float) - (x @ lower.planes.T).max(axis=1)

    def query_many(
        self, formulas: Sequence[str | Composition], energies: Sequence[object], progress: bool = False
    ) -> list[HullResult]:
        """``query`` for many rows at once (the same results, tested): rows are grouped by chemical
        system, each system's lower hull built once, and its rows placed together. ``progress`` shows a
        bar on stderr, one step per row.

        >>> hull = Hull.from_formulas(["Li2O", "LiO2"], [-2.1, -1.0])
        >>> [round(r.e_above_hull, 3) for r in hull.query_many(["Li2O2", "Li2O2"], [-1.5, -1.7])]
        [0.075, -0.125]
        >>> hull.query_many(["XeF2", "Li2O"], [-1.0, "x"])[1].reason
        "energy 'x' is not a finite number"
        """
        results: list[HullResult | None] = [None] * len(formulas)
        by_system: dict[frozenset[str], list[tuple[int, Composition, float]]] = {}
        for index, (formula, energy) in enumerate(zip(formulas, energies, strict=True)):
            result = self._check(formula, energy)
            if isinstance(result, HullResult):
                results[index] = result
            else:
                comp, system = result
                by_system.setdefault(system, []).append((index, comp, float(energy)))  # type: ignore[arg-type]
        with tqdm(total=len(formulas), disable=not progress, unit="row", desc="hull") as bar:
            bar.update(len(formulas) - sum(len(rows) for rows in by_system.values()))
            for system, rows in by_system.items():
                lower = self.lower_hull(system)
                x = np.array(
                    [[c.get_atomic_fraction(el) for el in lower.elements] for _, c, _ in rows]
                )  # (M, k)
                energy = np.array([e for _, _, e in rows])  # (M,)
                heights = x @ lower.planes.T  # (M, F)
                facet = heights.argmax(axis=1)  # (M,)
                above = energy - heights[np.arange(len(rows)), facet]  # (M,)
                vertices = lower.facets[facet]  # (M, k)
                # barycentric amounts of x in its facet: the products and how much of each
                amounts = np.linalg.solve(np.swapaxes(lower.vertices[vertices], 1, 2), x[..., None])[..., 0]
                for (index, _, _), e_above, members, amount in zip(
                    rows, above, vertices, amounts, strict=True
                ):
                    results[index] = HullResult(
                        float(e_above), _products(lower, members, amount), lower.n_known
                    )
                bar.update(len(rows))
        return results  # type: ignore[return-value]

    def _check(
        self, formula: str | Composition, energy: object
    ) -> HullResult | tuple[Composition, frozenset[str]]:
        """A bad row's result with its reason, or the row's composition and chemical system."""
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
        return comp, system


_PLAIN_FORMULA = re.compile(r"(?:[A-Z][a-z]?(?:\d+(?:\.\d+)?)?)+")
_TERM = re.compile(r"([A-Z][a-z]?)(\d+(?:\.\d+)?)?")


def _fractions(formula: str) -> dict[str, float]:
    """Atomic fractions of a formula: plain ones (``Li2O``, ``Fe0.5O``) read directly, a tenth of
    pymatgen's parse, which stays the reader of everything else (``Ce(AgGe)2``).

    >>> _fractions("Li2O") == {"Li": 2 / 3, "O": 1 / 3}, _fractions("Ce(AgGe)2")["Ag"]
    (True, 0.4)
    """
    if not _PLAIN_FORMULA.fullmatch(formula):
        comp = Composition(formula)
        return {el.symbol: comp.get_atomic_fraction(el) for el in comp}
    counts: dict[str, float] = {}
    for symbol, amount in _TERM.findall(formula):
        counts[symbol] = counts.get(symbol, 0.0) + (float(amount) if amount else 1.0)
    total = sum(counts.values())
    return {symbol: count / total for symbol, count in counts.items()}


@functools.lru_cache(maxsize=65536)
def reduced_formula(formula: str) -> str:
    """pymatgen's reduced formula (``O2`` for oxygen), cached: hull vertices recur across systems.

    >>> reduced_formula("O"), reduced_formula("Li4O2")
    ('O2', 'Li2O')
    """
    return Composition(formula).reduced_formula


def _products(lower: LowerHull, members: np.ndarray, amounts: np.ndarray) -> str:
    """``A + B``: the facet's vertices with a share above pymatgen's tolerance, largest first (ties by
    formula; shares rounded so that equal shares compare equal whatever the solver's last digit)."""
    shares = [
        (round(-float(a), 9), reduced_formula(lower.labels[m]))
        for m, a in zip(members, amounts, strict=True)
        if abs(a) > NUMERICAL_TOL
    ]
    return " + ".join(label for _, label in sorted(shares))


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
