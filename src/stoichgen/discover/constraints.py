"""Element constraints on generated compositions: which elements may, must and may not appear, and how
many at most, resolved against a model's vocabulary and checked against each other.

>>> from stoichgen.chem.composition import Vocabulary
>>> vocab = Vocabulary(("Li", "O", "Mn", "Fe"))
>>> c = Constraints.resolve(vocab, elements="Li,Mn,O", require="O", max_elements=3)
>>> c.allowed.tolist(), c.description
([True, True, True, False], 'elements=Li,Mn,O require=O max_elements=3')
>>> Constraints.resolve(vocab, require="O", exclude="O")
Traceback (most recent call last):
...
stoichgen.errors.GenerateError: contradictory constraints: O both required and excluded
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from pymatgen.core import Element

from stoichgen.chem.composition import Vocabulary
from stoichgen.chem.validity import SYMBOL
from stoichgen.errors import GenerateError


def _symbols(value: str | Iterable[str] | None, name: str) -> tuple[str, ...]:
    """Element symbols from ``"Li,O"`` or ``["Li", "O"]``; unknown or misspelt symbols are refused."""
    if value is None:
        return ()
    try:
        items = value.split(",") if isinstance(value, str) else list(value)
    except TypeError:
        raise GenerateError(f"{name}: expected element symbols, got {value!r}", field=name) from None
    if not items or (isinstance(value, str) and not value.strip()):
        raise GenerateError(f"{name}: no element symbols given", field=name)
    out = []
    for item in items:
        if not isinstance(item, str):
            raise GenerateError(f"{name}: element symbols must be strings, got {item!r}", field=name)
        symbol = item.strip()
        if not symbol:
            raise GenerateError(f"{name}: empty element symbol in {value!r}", field=name)
        if not Element.is_valid_symbol(symbol):
            guess = symbol[:1].upper() + symbol[1:].lower()
            hint = f" (did you mean {guess!r}?)" if Element.is_valid_symbol(guess) else ""
            raise GenerateError(f"{name}: unknown element symbol {symbol!r}{hint}", field=name)
        if symbol not in out:
            out.append(symbol)
    return tuple(out)


@dataclass(frozen=True, eq=False)
class Constraints:
    """Which elements a generated composition may, must and may not contain, resolved on a vocabulary.

    ``allowed`` (V,) marks the x^b columns that may be non-zero; ``required`` lists column indices that
    must be present; ``max_elements`` bounds the number of elements (None: no bound).
    """

    vocabulary: Vocabulary
    allowed: np.ndarray
    required: tuple[int, ...] = ()
    max_elements: int | None = None
    description: str = "none"

    @classmethod
    def resolve(
        cls,
        vocab: Vocabulary,
        elements: str | Iterable[str] | None = None,
        require: str | Iterable[str] | None = None,
        exclude: str | Iterable[str] | None = None,
        max_elements: int | None = None,
    ) -> Constraints:
        """Check constraints against each other and the model's vocabulary.

        Symbols in ``elements`` or ``require`` that the model cannot generate are refused (named); symbols
        in ``exclude`` outside the vocabulary are accepted, since they can never appear anyway.
        """
        only, needed, banned = (
            _symbols(elements, "elements"),
            _symbols(require, "require"),
            _symbols(exclude, "exclude"),
        )
        for name, symbols in (("elements", only), ("require", needed)):
            outside = [s for s in symbols if s not in vocab]
            if outside:
                raise GenerateError(
                    f"{name}: {', '.join(outside)} not in the model's vocabulary of {len(vocab)} elements",
                    field=name,
                )
        both = [s for s in needed if s in banned]
        if both:
            raise GenerateError(
                f"contradictory constraints: {', '.join(both)} both required and excluded", field="exclude"
            )
        if elements is not None:
            stray = [s for s in needed if s not in only]
            if stray:
                raise GenerateError(
                    f"contradictory constraints: required {', '.join(stray)} not among elements "
                    f"{','.join(only)}",
                    field="require",
                )
        if max_elements is not None:
            if isinstance(max_elements, bool) or not isinstance(max_elements, numbers.Integral):
                raise GenerateError(
                    f"max_elements must be an integer, got {max_elements!r}", field="max_elements"
                )
            if max_elements < 1:
                raise GenerateError(
                    f"max_elements must be at least 1, got {max_elements}", field="max_elements"
                )
            if len(needed) > max_elements:
                raise GenerateError(
                    f"contradictory constraints: {len(needed)} required elements ({', '.join(needed)}) "
                    f"but max_elements={max_elements}",
                    field="max_elements",
                )
            max_elements = int(max_elements)
        allowed = np.ones(len(vocab), dtype=bool)
        if elements is not None:
            allowed[:] = False
            allowed[[vocab.index(s) for s in only]] = True
        allowed[[vocab.index(s) for s in banned if s in vocab]] = False
        if not allowed.any():
            raise GenerateError(
                "contradictory constraints: every element of the model is excluded", field="exclude"
            )
        parts = [
            f"elements={','.join(only)}" if elements is not None else "",
            f"require={','.join(needed)}" if needed else "",
            f"exclude={','.join(banned)}" if banned else "",
            f"max_elements={max_elements}" if max_elements is not None else "",
        ]
        allowed.flags.writeable = False
        return cls(
            vocab,
            allowed,
            tuple(vocab.index(s) for s in needed),
            max_elements,
            " ".join(p for p in parts if p) or "none",
        )

    def satisfied(self, present: np.ndarray) -> np.ndarray:
        """Rows of an (N, V) presence mask that meet every constraint (non-empty rows assumed). (N,)."""
        ok = ~(present & ~self.allowed).any(axis=1)
        if self.required:
            ok &= present[:, list(self.required)].all(axis=1)
        if self.max_elements is not None:
            ok &= present.sum(axis=1) <= self.max_elements
        return ok

    def check_formulas(self, formulas: Sequence[str]) -> list[str]:
        """Output formulas that break a constraint (an internal error if any)."""
        allowed = {self.vocabulary.symbols[i] for i in np.flatnonzero(self.allowed)}
        required = {self.vocabulary.symbols[i] for i in self.required}
        bad = []
        for formula in formulas:
            symbols = set(SYMBOL.findall(formula))
            too_many = self.max_elements is not None and len(symbols) > self.max_elements
            if not symbols or symbols - allowed or required - symbols or too_many:
                bad.append(formula)
        return bad
