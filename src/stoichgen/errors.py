"""One family of errors and warnings for everything a user can get wrong.

Every error stoichgen raises for bad input is a ``StoichgenError`` (a ``ValueError``), with a message
that names the value and the reason in the library's own words; the command line adds flag names
where it translates. Warnings are ``StoichgenWarning``.

>>> issubclass(FormulaError, StoichgenError) and issubclass(StoichgenError, ValueError)
True
>>> check_int(3, "n", minimum=1)
3
>>> check_int(0, "n", minimum=1)
Traceback (most recent call last):
...
stoichgen.errors.InputError: n must be an integer >= 1, got 0
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = [
    "DataError",
    "EvaluateError",
    "ExtrapolationWarning",
    "FormulaError",
    "GenerateError",
    "GenerateWarning",
    "InputError",
    "ReproduceError",
    "RunError",
    "StoichgenError",
    "StoichgenWarning",
    "TrainError",
    "check_choice",
    "check_int",
    "check_number",
    "check_targets",
    "SEED_MAX",
]

SEED_MAX = 2**63 - 1  # the largest seed torch and numpy both take


class StoichgenError(ValueError):
    """Base of every error about a user's input, data, run or request.

    ``field``: the argument the error is about, where there is one (the web API reports it, so that the
    page can show the message beside that field).

    >>> InputError("n must be an integer >= 1, got 0", field="n").field
    'n'
    """

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


class InputError(StoichgenError):
    """An argument outside its allowed range or of the wrong type."""


class FormulaError(StoichgenError):
    """A chemical formula that cannot be turned into a usable composition."""


class DataError(StoichgenError):
    """A data file or row that cannot be used."""


class RunError(StoichgenError):
    """A run directory or checkpoint that cannot be read or is not a valid stoichgen run."""


class TrainError(StoichgenError):
    """A training request that cannot be served."""


class GenerateError(StoichgenError):
    """A generation request that cannot be served (bad input, contradictory constraints, no model)."""


class EvaluateError(StoichgenError):
    """An evaluation request that cannot be run (bad targets, a model/data mismatch)."""


class ReproduceError(StoichgenError):
    """A report directory or plan that cannot be used."""


class StoichgenWarning(UserWarning):
    """Work went ahead, but with a caveat the user should see."""


class GenerateWarning(StoichgenWarning):
    """Generation went ahead, but with a caveat (extrapolation, rows dropped, cache not written)."""


class ExtrapolationWarning(GenerateWarning):
    """A target outside the property range of the model's training split."""


def check_int(value: object, name: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an int if it is an integer within [minimum, maximum]; ``InputError`` naming it if not."""
    ok = not isinstance(value, bool) and isinstance(value, numbers.Integral)
    ok = ok and (minimum is None or value >= minimum) and (maximum is None or value <= maximum)
    if not ok:
        if minimum is not None and maximum is not None:
            bounds = f" between {minimum} and {maximum}"
        elif minimum is not None:
            bounds = f" >= {minimum}"
        elif maximum is not None:
            bounds = f" <= {maximum}"
        else:
            bounds = ""
        raise InputError(f"{name} must be an integer{bounds}, got {value!r}", field=name)
    return int(value)  # type: ignore[arg-type]


def check_choice(
    value: object, choices: tuple[str, ...], name: str, what: str | None = None, error: type = InputError
) -> str:
    """``value`` if it is one of ``choices``; else ``error`` (a StoichgenError) naming it and the choices.

    >>> check_choice("exact", ("none", "mh", "exact"), "balance", "balancing method")
    'exact'
    >>> check_choice("magic", ("none", "mh", "exact"), "balance", "balancing method")
    Traceback (most recent call last):
    ...
    stoichgen.errors.InputError: unknown balancing method 'magic'; choose none, mh or exact
    """
    if not isinstance(value, str) or value not in choices:
        listed = f"{', '.join(choices[:-1])} or {choices[-1]}" if len(choices) > 1 else choices[0]
        raise error(f"unknown {what or name} {value!r}; choose {listed}", field=name)
    return value


def check_number(value: object, name: str) -> float:
    """``value`` as a finite float; ``InputError`` naming it otherwise (booleans are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise InputError(f"{name} must be a finite number, got {value!r}", field=name)
    return float(value)


def check_targets(targets: object) -> np.ndarray:
    """One target value or a sequence of them as a float array (T,); ``InputError`` naming a bad one.

    >>> check_targets([-2, -1.5]).tolist()
    [-2.0, -1.5]
    """
    values = np.atleast_1d(np.asarray(targets, dtype=object)).ravel()
    if values.size == 0:
        raise InputError("no target given", field="target")
    out = []
    for value in values:
        if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
            raise InputError(f"target {value!r} is not a number", field="target")
        if not math.isfinite(float(value)):
            raise InputError(f"target {value!r} is not a finite number", field="target")
        out.append(float(value))
    return np.array(out)
