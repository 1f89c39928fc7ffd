"""Compositions as values: parsing formulas, the element vocabulary, and vector <-> composition.

A composition is represented by its bag-of-atoms vector x^b: the atomic fractions over a fixed element
vocabulary (paper Sec. 2, with counts normalised to fractions as in the authors' code).

>>> vocab = Vocabulary(("H", "O"))
>>> composition_to_fractions(parse_formula("H2O"), vocab).round(2).tolist()
[0.67, 0.33]
>>> parse_formula("CuSO4·5H2O").formula
'Cu1 H10 S1 O9'
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from pymatgen.core import Composition, Element

from stoichgen.errors import FormulaError

DEFAULT_THRESHOLD = 0.03  # paper Sec. 5.2: TH

# Excel turns formulas such as "Fe2" into dates ("2-Feb"); such values cannot be repaired reliably.
_SPREADSHEET_DATE = re.compile(r"^\s*(\d{1,2}-[A-Z][a-z]{2}|[A-Z][a-z]{2}-\d{1,2})\s*$")
# Dots that join the parts of an adduct (CuSO4·5H2O); "." is told apart from a decimal point separately.
_ADDUCT_DOTS = ("·", "•", "⋅", "*")
_LEADING_COUNT = re.compile(r"^\s*(\d+)?\s*(.*)$", re.DOTALL)
# An explicit amount after an element symbol or a closing bracket; pymatgen silently drops zeros.
_EXPLICIT_AMOUNT = re.compile(r"(?:[A-Z][a-z]*|[)\]])\s*(-?\d+(?:\.\d*)?|-?\.\d+)")


def parse_formula(raw: str) -> Composition:
    """Parse a chemical formula strictly into a pymatgen ``Composition``.

    Unlike ``Composition(raw)`` this refuses unknown symbols (pymatgen would make a dummy species),
    zero or negative amounts (pymatgen would drop or reject them with a generic message) and
    spreadsheet-mangled dates such as ``2-Feb``. Adducts such as hydrates are read with an explicit
    dot (``CuSO4·5H2O``, or ``*``); a plain ``.`` that could be either a decimal point or an adduct dot
    (``CuSO4.5H2O``: Cu S O4.5 H2, or CuSO4·5H2O?) is refused with both readings named, never guessed.

    >>> parse_formula("Ce(AgGe)2").reduced_formula
    'Ce(AgGe)2'
    >>> parse_formula("NaN").formula
    'Na1 N1'
    >>> parse_formula("Li0.5CoO2").formula
    'Li0.5 Co1 O2'
    >>> parse_formula("CuSO4.5H2O")
    Traceback (most recent call last):
    ...
    stoichgen.errors.FormulaError: formula 'CuSO4.5H2O' is ambiguous: read with decimal amounts it is \
Cu1 H2 S1 O5.5, read as an adduct it is Cu1 H10 S1 O9; write 'CuSO4·5H2O' for the adduct (hydrate) or \
give the amounts without a dot between formula parts
    """
    if not isinstance(raw, str):
        raise FormulaError(f"formula must be a string, got {type(raw).__name__} {raw!r}")
    text = raw.strip()
    if not text:
        raise FormulaError("empty formula")
    if _SPREADSHEET_DATE.match(text):
        raise FormulaError(f"formula {raw!r} looks like a spreadsheet date (mangled formula); not repaired")
    for dot in _ADDUCT_DOTS:
        text = text.replace(dot, "·")
    if "·" in text:
        return _adduct(text.split("·"), raw)
    if "." not in text:
        return _plain(text, raw)
    # "." is a decimal point or an adduct dot: take the reading that parses, refuse when both do and differ
    try:
        decimal = _plain(text, raw)
    except FormulaError as err:
        decimal, decimal_error = None, err
    try:
        adduct = _adduct(text.split("."), raw, multi_element_parts=True)
    except FormulaError:
        adduct = None
    if decimal is None:
        if adduct is None:
            raise decimal_error
        return adduct
    if adduct is not None and not decimal.almost_equals(adduct, rtol=0.0, atol=1e-9):
        hint = "·".join(part.strip() for part in text.split("."))
        raise FormulaError(
            f"formula {raw!r} is ambiguous: read with decimal amounts it is {decimal.formula}, read as an "
            f"adduct it is {adduct.formula}; write {hint!r} for the adduct (hydrate) or give the amounts "
            "without a dot between formula parts"
        )
    return decimal


def _plain(text: str, raw: str) -> Composition:
    """One formula without adduct dots, strictly."""
    for amount in _EXPLICIT_AMOUNT.findall(text):
        if float(amount) <= 0:
            raise FormulaError(f"formula {raw!r} has a zero or negative amount {amount}")
    try:
        comp = Composition(text)
    except (ValueError, KeyError, TypeError) as err:
        raise FormulaError(f"invalid formula {raw!r}: {err}") from err
    for species in comp:
        if not isinstance(species, Element):
            raise FormulaError(f"unknown element symbol {str(species.symbol)!r} in formula {raw!r}")
    if comp.num_atoms <= 0:
        raise FormulaError(f"formula {raw!r} has no atoms")
    return comp


def _adduct(parts: list[str], raw: str, multi_element_parts: bool = False) -> Composition:
    """The sum of adduct parts, each after the first with an optional integer count (``5H2O``).

    ``multi_element_parts``: every part must hold two or more elements (CuSO4, H2O), which is what tells
    an adduct apart from a decimal amount such as ``Fe2.5O``.
    """
    total = Composition()
    for position, part in enumerate(parts):
        match = _LEADING_COUNT.match(part)
        count_text, body = (match.group(1), match.group(2)) if match else (None, part)
        if position == 0 and count_text:
            raise FormulaError(f"formula {raw!r} starts with a number")
        count = int(count_text) if count_text else 1
        if count <= 0 or not body.strip():
            raise FormulaError(f"formula {raw!r} has an empty or zero adduct part {part!r}")
        comp = _plain(body.strip(), raw)
        if multi_element_parts and len(comp) < 2:
            raise FormulaError(f"adduct part {part!r} of {raw!r} holds one element")
        total += comp * count
    return total


@dataclass(frozen=True)
class Vocabulary:
    """The ordered element symbols that index x^b, sorted by atomic number.

    >>> Vocabulary.from_compositions([parse_formula("H2O"), parse_formula("LiH")]).symbols
    ('H', 'Li', 'O')
    """

    symbols: tuple[str, ...]
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        symbols = tuple(self.symbols)
        for symbol in symbols:
            if not Element.is_valid_symbol(symbol):
                raise FormulaError(f"unknown element symbol {symbol!r} in vocabulary")
        numbers = [Element(s).Z for s in symbols]
        if numbers != sorted(set(numbers)):
            raise FormulaError(f"vocabulary must be unique and ordered by atomic number, got {symbols}")
        object.__setattr__(self, "symbols", symbols)
        object.__setattr__(self, "_index", {s: i for i, s in enumerate(symbols)})

    @classmethod
    def from_compositions(cls, compositions: Iterable[Composition]) -> Vocabulary:
        present = {el.symbol for comp in compositions for el in comp}
        return cls(tuple(sorted(present, key=lambda s: Element(s).Z)))

    def __len__(self) -> int:
        return len(self.symbols)

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._index

    def index(self, symbol: str) -> int:
        try:
            return self._index[symbol]
        except KeyError:
            raise KeyError(f"element {symbol!r} is not in the vocabulary of {len(self)} elements") from None


def composition_to_fractions(comp: Composition, vocab: Vocabulary) -> np.ndarray:
    """x^b of one composition: atomic fractions over ``vocab``, summing to 1. Shape (V,)."""
    x = np.zeros(len(vocab))
    total = comp.num_atoms
    for el, amount in comp.get_el_amt_dict().items():
        x[vocab.index(el)] = amount / total
    return x


def fractions_matrix(compositions: Sequence[Composition], vocab: Vocabulary) -> np.ndarray:
    """x^b of many compositions. Shape (N, V)."""
    x = np.zeros((len(compositions), len(vocab)))
    for row, comp in enumerate(compositions):
        x[row] = composition_to_fractions(comp, vocab)
    return x


def formula_fractions(formulas: Sequence[str], vocab: Vocabulary) -> np.ndarray:
    """x^b of formula strings (e.g. generated reduced formulas). Shape (N, V).

    >>> formula_fractions(["NaCl"], Vocabulary(("Na", "Cl"))).tolist()
    [[0.5, 0.5]]
    """
    with warnings.catch_warnings():
        # pymatgen warns that noble gases have no Pauling electronegativity while ordering formulas
        warnings.filterwarnings("ignore", message="No Pauling electronegativity")
        return fractions_matrix([Composition(f) for f in formulas], vocab)


def threshold_fractions(x: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Zero every fraction below ``threshold`` and renormalise rows to 1 (paper Sec. 5.2).

    Rows with nothing at or above the threshold come back all zero. Shape preserved: (N, V) or (V,).
    """
    x = np.asarray(x, dtype=float)
    kept = np.where(x >= threshold, x, 0.0)
    total = kept.sum(axis=-1, keepdims=True)
    return np.divide(kept, total, out=np.zeros_like(kept), where=total > 0)


def paper_string(fractions: dict[str, float]) -> str:
    """The paper's notation: elements by atomic number, two decimals (``Li0.29O0.58Mn0.13``)."""
    ordered = sorted(fractions.items(), key=lambda item: Element(item[0]).Z)
    return "".join(f"{symbol}{amount:.2f}" for symbol, amount in ordered)


def integer_formula(fractions: dict[str, float], max_denominator: int = 100) -> str:
    """Reduced integer formula of fractional amounts, e.g. {Li: 0.29, O: 0.58, Mn: 0.13} -> Li29Mn13O58."""
    formula, _ = Composition(fractions).get_integer_formula_and_factor(max_denominator=max_denominator)
    return Composition(formula).reduced_formula


def fraction_dicts(x: np.ndarray, symbols: tuple[str, ...]) -> list[dict[str, float]]:
    """The non-zero fractions of each row of x (N, V) as ``{symbol: fraction}``."""
    rows, cols = np.nonzero(x)
    out: list[dict[str, float]] = [{} for _ in range(len(x))]
    for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
        out[r][symbols[c]] = float(x[r, c])
    return out
