"""Compositions as values: parsing formulas, the element vocabulary, and vector <-> composition.

A composition is represented by its bag-of-atoms vector x^b: the atomic fractions over a fixed element
vocabulary (paper Sec. 2, with counts normalised to fractions as in the authors' code).

>>> vocab = Vocabulary(("H", "O"))
>>> x = composition_to_fractions(parse_formula("H2O"), vocab)
>>> decode(x, vocab).text
'H0.67O0.33'
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from pymatgen.core import Composition, Element

DEFAULT_THRESHOLD = 0.03  # paper Sec. 5.2: TH

# Excel turns formulas such as "Fe2" into dates ("2-Feb"); such values cannot be repaired reliably.
_SPREADSHEET_DATE = re.compile(r"^\s*(\d{1,2}-[A-Z][a-z]{2}|[A-Z][a-z]{2}-\d{1,2})\s*$")
# An explicit amount after an element symbol or a closing bracket; pymatgen silently drops zeros.
_EXPLICIT_AMOUNT = re.compile(r"(?:[A-Z][a-z]*|[)\]])\s*(-?\d+(?:\.\d*)?|-?\.\d+)")


class FormulaError(ValueError):
    """A formula that cannot be turned into a usable composition."""


def parse_formula(raw: str) -> Composition:
    """Parse a chemical formula strictly into a pymatgen ``Composition``.

    Unlike ``Composition(raw)`` this refuses unknown symbols (pymatgen would make a dummy species),
    zero or negative amounts (pymatgen would drop or reject them with a generic message) and
    spreadsheet-mangled dates such as ``2-Feb``.

    >>> parse_formula("Ce(AgGe)2").reduced_formula
    'Ce(AgGe)2'
    >>> parse_formula("NaN").formula
    'Na1 N1'
    """
    if not isinstance(raw, str):
        raise FormulaError(f"formula must be a string, got {type(raw).__name__} {raw!r}")
    text = raw.strip()
    if not text:
        raise FormulaError("empty formula")
    if _SPREADSHEET_DATE.match(text):
        raise FormulaError(f"formula {raw!r} looks like a spreadsheet date (mangled formula); not repaired")
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
                raise ValueError(f"unknown element symbol {symbol!r} in vocabulary")
        numbers = [Element(s).Z for s in symbols]
        if numbers != sorted(set(numbers)):
            raise ValueError(f"vocabulary must be unique and ordered by atomic number, got {symbols}")
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


@dataclass(frozen=True)
class DecodedComposition:
    """A generated vector turned back into a composition.

    ``fractions`` are the thresholded, renormalised fractions; ``text`` the paper-style string;
    ``formula`` the reduced integer formula (parseable by pymatgen). Empty when nothing passed TH.
    """

    fractions: dict[str, float]
    text: str
    formula: str

    @property
    def is_empty(self) -> bool:
        return not self.fractions

    @property
    def composition(self) -> Composition | None:
        return Composition(self.formula) if self.formula else None

    @property
    def n_elements(self) -> int:
        return len(self.fractions)


def integer_formula(fractions: dict[str, float], max_denominator: int = 100) -> str:
    """Reduced integer formula of fractional amounts, e.g. {Li: 0.29, O: 0.58, Mn: 0.13} -> Li29Mn13O58."""
    formula, _ = Composition(fractions).get_integer_formula_and_factor(max_denominator=max_denominator)
    return Composition(formula).reduced_formula


def decode(x: np.ndarray, vocab: Vocabulary, threshold: float = DEFAULT_THRESHOLD) -> DecodedComposition:
    """Vector of fractions over ``vocab`` (shape (V,)) -> composition (paper Sec. 5.2).

    >>> decode(np.array([0.5, 0.49, 0.01]), Vocabulary(("Na", "Cl", "K"))).formula
    'NaCl'
    """
    x = np.asarray(x, dtype=float)
    if x.shape != (len(vocab),):
        raise ValueError(f"vector of shape {x.shape} does not match the vocabulary of {len(vocab)} elements")
    kept = threshold_fractions(x, threshold)
    fractions = {vocab.symbols[i]: float(kept[i]) for i in np.flatnonzero(kept)}
    if not fractions:
        return DecodedComposition({}, "", "")
    return DecodedComposition(fractions, paper_string(fractions), integer_formula(fractions))


def decode_many(
    x: np.ndarray, vocab: Vocabulary, threshold: float = DEFAULT_THRESHOLD
) -> list[DecodedComposition]:
    """``decode`` for every row of an (N, V) matrix."""
    return [decode(row, vocab, threshold) for row in np.asarray(x, dtype=float)]
