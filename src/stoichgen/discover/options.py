"""Each generation method's options, declared once: a frozen dataclass per method whose fields carry
their help, bounds and choices. ``Generator.generate`` builds them from its keyword arguments, the
CLI's ``generate`` flags and the web page's request model are built from their fields.

>>> GuidedOptions(max_atoms=12).max_atoms
12
>>> PaperOptions(balance="magic")
Traceback (most recent call last):
...
stoichgen.errors.GenerateError: unknown balancing method 'magic'; choose none, mh or exact
>>> sorted(set(option_names(PaperOptions)) - set(option_names(GuidedOptions)))[:3]
['balance', 'max_iterations', 'max_rounds']
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from stoichgen.chem.balance import BALANCE_METHODS, DEFAULT_MAX_ATOMS, MAX_EXACT_ATOMS
from stoichgen.chem.composition import DEFAULT_THRESHOLD
from stoichgen.chem.oxidation import OXIDATION_TABLES
from stoichgen.errors import SEED_MAX, GenerateError, check_choice, check_int, check_number
from stoichgen.space.score import OBJECTIVES

DEFAULT_MODEL = "cgan-bp"  # resources/models/<name>/: the bundled default run
METHODS = ("guided", "paper")
MAX_GENERATE_ROWS = 100_000  # targets x n per call: bounded memory and minutes of work, not hours

__all__ = ["GENERATE_MAX_ITERATIONS", "MAX_ITERATIONS", "CommonOptions", "GuidedOptions", "OptionSpec",
           "PaperOptions", "option_names", "option_specs"]  # fmt: skip

DEFAULT_MAX_ROUNDS = 10
# MH iterations per chain for interactive generation (the paper's reproduction uses the authors' 10,000)
GENERATE_MAX_ITERATIONS = 3_000
MAX_ITERATIONS = 100_000  # MH iterations per chain

Symbols = str | Iterable[str] | None  # "Li,O" or ["Li", "O"]


@dataclass(frozen=True)
class OptionSpec:
    """How one option is described and checked: help text, kind (``int``, ``float``, ``bool``,
    ``choice``, ``symbols``), bounds (ints: inclusive; ``threshold``: open), choices, a metavar."""

    help: str
    kind: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    metavar: str | None = None
    open_interval: bool = False
    label: str | None = None  # what a choice is called in messages ("balancing method")


def _option(default: Any, help: str, kind: str, **spec: Any) -> Any:
    return field(default=default, metadata={"spec": OptionSpec(help, kind, **spec)})


def _none_is_the_methods(name: str) -> bool:
    """Options whose None means "the method's own default" (``oxidation``)."""
    return name in ("oxidation",)


def _check(name: str, value: Any, spec: OptionSpec) -> Any:
    """``value`` checked against its spec; ``GenerateError`` naming the option if it does not fit."""
    if value is None and (spec.kind in ("symbols", "int", "float", "range") or _none_is_the_methods(name)):
        return value
    if spec.kind == "range":
        return _check_range(name, value)
    try:
        if spec.kind == "int":
            lo = None if spec.low is None else int(spec.low)
            return check_int(value, name, lo, None if spec.high is None else int(spec.high))
        if spec.kind == "float":
            number = check_number(value, name)
            if spec.open_interval and not spec.low < number < spec.high:  # type: ignore[operator]
                bounds = f"({spec.low:g}, {spec.high:g})"
                raise GenerateError(f"{name} must be a number in {bounds}, got {value!r}", field=name)
            return number
        if spec.kind == "choice":
            return check_choice(value, spec.choices, name, spec.label, GenerateError)
        if spec.kind == "bool" and not isinstance(value, bool):
            raise GenerateError(f"{name} must be true or false, got {value!r}", field=name)
    except GenerateError:
        raise
    except Exception as err:  # InputError of the shared checks: the same words, this room's class
        raise GenerateError(str(err), field=name) from None
    return value


def _check_range(name: str, value: Any) -> tuple[float, float]:
    """A ``(low, high)`` pair of numbers, low below high; ``None`` (or an infinity) leaves one side open.

    >>> _check_range("target_range", [None, -2])
    (-inf, -2.0)
    """
    if isinstance(value, str | bytes) or not isinstance(value, Sequence) or len(value) != 2:
        raise GenerateError(f"{name} must be a pair (low, high), got {value!r}", field=name)
    low = -math.inf if value[0] is None else value[0]
    high = math.inf if value[1] is None else value[1]
    if any(isinstance(v, bool) or not isinstance(v, numbers.Real) or math.isnan(v) for v in (low, high)):
        raise GenerateError(f"{name} must be a pair of numbers (low, high), got {value!r}", field=name)
    if not low < high:
        raise GenerateError(f"{name}: the minimum {low:g} must be below the maximum {high:g} "
                            f"(--target-min < --target-max)", field=name)  # fmt: skip
    if math.isinf(low) and math.isinf(high):
        raise GenerateError(f"{name}: give a finite minimum, maximum or both", field=name)
    return float(low), float(high)


@dataclass(frozen=True)
class CommonOptions:
    """Options every method takes: which elements, how large a formula, the random seed."""

    elements: Symbols = _option(None, "only these elements may appear", "symbols", metavar="A,B,..")
    require: Symbols = _option(None, "these elements must appear", "symbols", metavar="A,B,..")
    exclude: Symbols = _option(None, "these elements must not appear", "symbols", metavar="A,B,..")
    max_elements: int | None = _option(None, "at most K elements per composition", "int", low=1, high=118,
                                       metavar="K")  # fmt: skip
    max_atoms: int = _option(DEFAULT_MAX_ATOMS, f"largest formula unit: guided search, or balance exact "
                             f"(default {DEFAULT_MAX_ATOMS}, at most {MAX_EXACT_ATOMS})", "int", low=2,
                             high=MAX_EXACT_ATOMS)  # fmt: skip
    seed: int = _option(0, "random seed: the same inputs and seed give the same rows", "int", low=0,
                        high=SEED_MAX)  # fmt: skip
    oxidation: str | None = _option(None, "oxidation states a formula may use: 'common' (pymatgen's "
                                    "common states), 'icsd' (ICSD-derived: SMACT's ICSD-24 states for the "
                                    "guided search and the screen, pymatgen's ICSD states for the paper's "
                                    "balancing) or 'all' (default: icsd for guided, ranked by how likely its "
                                    "states are; common for paper)", "choice", choices=OXIDATION_TABLES,
                                    label="oxidation table")  # fmt: skip

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            spec = f.metadata["spec"]
            checked = _check(f.name, getattr(self, f.name), spec)
            object.__setattr__(self, f.name, checked)

    @property
    def needs_target(self) -> bool:
        """Whether the method needs a target value (the stability objective does not)."""
        return True


@dataclass(frozen=True)
class GuidedOptions(CommonOptions):
    """The guided search's options (the default method)."""

    objective: str = _option("target", "hit the target (default), or 'stability': lowest predicted "
                             "e_above_hull", "choice", choices=OBJECTIVES)  # fmt: skip
    include_known: bool = _option(False, "let training-split formulas through", "bool")
    max_e_hull: float | None = _option(None, "keep candidates at most X eV/atom above the known hull "
                                       "(formation energies only)", "float", metavar="X")  # fmt: skip
    target_range: tuple[float, float] | None = _option(None, "rank by the probability that the property "
                                                       "lies in [A, B] (p_in_range), instead of a target; "
                                                       "one side may be left open", "range",
                                                       metavar="A")  # fmt: skip

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.target_range is not None and self.objective != "target":
            raise GenerateError(f"target_range goes with objective 'target' (a property in a range), not "
                                f"{self.objective!r}", field="target_range")  # fmt: skip

    @property
    def needs_target(self) -> bool:
        return self.objective == "target" and self.target_range is None

    @property
    def table(self) -> str:
        """The oxidation table of the search: SMACT's ICSD-24 states unless asked otherwise."""
        return self.oxidation or "icsd"


@dataclass(frozen=True)
class PaperOptions(CommonOptions):
    """The paper pipeline's options: decoding, valence balancing and redrawing."""

    balance: str = _option("mh", "valence balancing (default mh)", "choice", choices=BALANCE_METHODS,
                           label="balancing method")  # fmt: skip
    threshold: float = _option(DEFAULT_THRESHOLD, f"TH (default {DEFAULT_THRESHOLD})", "float", low=0.0,
                               high=1.0, open_interval=True)  # fmt: skip
    neutral_only: bool = _option(False, "redraw rows left not charge neutral", "bool")
    unique: bool = _option(False, "keep one row per reduced formula (first)", "bool")
    max_rounds: int = _option(DEFAULT_MAX_ROUNDS, f"redraw rounds at most (default {DEFAULT_MAX_ROUNDS})",
                              "int", low=0, high=1000)  # fmt: skip
    @property
    def table(self) -> str:
        """The oxidation table of balancing: pymatgen's common states unless asked otherwise."""
        return self.oxidation or "common"

    max_iterations: int = _option(GENERATE_MAX_ITERATIONS, f"MH iterations (default "
                                  f"{GENERATE_MAX_ITERATIONS}; the authors' 10000)", "int", low=1,
                                  high=MAX_ITERATIONS)  # fmt: skip


METHOD_OPTIONS: dict[str, type[CommonOptions]] = {"guided": GuidedOptions, "paper": PaperOptions}


def option_names(options: type[CommonOptions]) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(options))


def option_specs() -> dict[str, tuple[OptionSpec, Any, tuple[str, ...]]]:
    """Every option of every method: its spec, its default and the methods that take it, in declaration
    order (the common options first)."""
    out: dict[str, tuple[OptionSpec, Any, tuple[str, ...]]] = {}
    for method, options in METHOD_OPTIONS.items():
        for f in dataclasses.fields(options):
            spec, default, methods = out.get(f.name, (f.metadata["spec"], f.default, ()))
            out[f.name] = (spec, default, (*methods, method))
    return out


def build_options(method: str, given: Mapping[str, Any]) -> CommonOptions:
    """The method's options from keyword arguments. Another method's option is refused by name when it
    is set to anything but its default (a request may carry every field at its default); an unknown
    name is refused."""
    options = METHOD_OPTIONS[method]
    own = set(option_names(options))
    every = option_specs()
    for name, value in given.items():
        if name in own:
            continue
        if name not in every:
            raise GenerateError(f"unknown option {name!r}; the options are {', '.join(every)}", field=name)
        default = every[name][1]
        if not _same(value, default):
            others = " or ".join(every[name][2])
            raise GenerateError(f"{name} applies to method {others!r} only, not {method!r}", field=name)
    return options(**{k: v for k, v in given.items() if k in own})


def _same(value: Any, default: Any) -> bool:
    if isinstance(value, float) and isinstance(default, float):
        return math.isclose(value, default)
    return type(value) is type(default) and value == default
