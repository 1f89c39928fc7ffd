"""Generation: compositions at a target property, decoded, charge balanced, screened and compared.

``Generator`` wraps a trained CondGAN or CondVAE run: it samples raw vectors at the target (``Sampler``),
enforces element constraints, decodes with the paper's threshold (TH = 0.03, renormalised; Sec. 5.2),
balances the valence (``charge.balance``, MH by default; Sec. 4), and annotates every row with SMACT
validity, the model's own property prediction P(x~) and the nearest composition of the model's training
split (Sec. 6).

>>> gen = Generator.from_run("runs/cgan-bp")                                   # doctest: +SKIP
>>> df = gen.generate(-2.0, n=256, require="O", exclude="Pb,Hg,Cd", unique=True)  # doctest: +SKIP
>>> df[["formula", "charge_neutral", "predicted_property", "nearest_formula"]]    # doctest: +SKIP

Columns (one row per generated composition):

- ``target``: the requested property value; ``draw``: index of the draw (per target) the row came from.
- ``raw_composition``: the thresholded, renormalised generated fractions before balancing (paper style,
  ``Li0.29O0.58Mn0.13``); ``composition``: the same after balancing; ``formula``: reduced integer
  formula of the balanced fractions (``integer_formula``, parseable by pymatgen); ``n_elements``.
- ``valence_raw`` / ``valence``: min_v |v^T x| before / after balancing (NaN for elements without
  oxidation states); ``charge_neutral``; ``unbalanceable`` (no neutral composition keeps every element at
  or above TH); ``balance_iterations`` (MH rounds); ``balance_skipped``: the row has more than
  ``MAX_BALANCE_ELEMENTS`` (8, the most of any MP composition) elements and was left as generated, only
  measured (NaN valences beyond ``MAX_ASSIGNMENTS`` oxidation-state assignments): MH chains on such
  rows can cost seconds each; ``smact_valid`` (``charge.smact_valid`` on ``formula``; False, unscreened,
  when SMACT would have to try more than ``SMACT_MAX_COMBINATIONS`` oxidation-state combinations).
- ``predicted_property``: the CondGAN's property head P applied to the generated vector itself (after
  constraint masking, before thresholding), as in the paper's Table 3; for x^bp models that is the raw
  generated [x^b, x^p], whose x^p part comes from the generator, not from the decoded composition.
  ``predicted_property_balanced``: P of the balanced composition, with x^p recomputed from it (x^bp
  models). Both NaN for a CondVAE run, which has no property head.
- ``nearest_formula`` / ``nearest_property`` / ``nearest_distance``: the nearest composition of the
  model's training split, by Euclidean distance between balanced x^b vectors in the model's min-max
  normalised units (``nearest.NearestIndex`` in x^b space); ``novel``: ``formula`` is
  not a reduced formula of the training split.

Constraints (``elements``, ``require``, ``exclude``, ``max_elements``) never leak. The x^b columns of
disallowed elements are zeroed in the raw vector before thresholding, so they cannot appear; rows that
decode empty, lack a required element or have more than ``max_elements`` elements (and, with
``neutral_only``, rows left not charge neutral) are rejected and replaced by fresh draws with new noise,
in at most ``max_rounds`` rounds (each sized from the acceptance rate so far, at most
``max(100 n, 10,000)`` vectors per target). Requested rows still unfilled after that are dropped with a
``GenerateWarning``, never kept: the output holds only rows that satisfy every constraint, which is
checked again on the balanced fractions and the output formulas. ``df.attrs`` counts ``redrawn`` rows
(and why), ``dropped`` rows and ``duplicates_removed`` (``unique``).

The nearest-neighbour reference is the training split, recovered from the checkpoint (data source and
split). Loading the data set takes seconds, so the split is cached in compact form as
``reference.npz`` in the run directory (sparse x^b, property, reduced formulas, and a key of the
checkpoint's vocabulary, data source and split): written on first use (atomically) or by
``write_reference(run_dir)`` after training, and rebuilt when the key no longer matches. Delete it to
force a rebuild (e.g. after editing the training CSV in place).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import math
import numbers
import re
import warnings
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from pymatgen.core import Element
from scipy import sparse
from smact import metals as smact_metals

from stoichgen.charge import DEFAULT_MAX_ATOMS, oxidation_states, smact_valid
from stoichgen.charge import balance as balance_valence
from stoichgen.composition import DEFAULT_THRESHOLD, Vocabulary, integer_formula, paper_string
from stoichgen.composition import threshold_fractions as threshold_rows
from stoichgen.data import DataError, Dataset
from stoichgen.models import CondGAN
from stoichgen.nearest import NearestIndex
from stoichgen.sample import Sampler
from stoichgen.train import (
    CHECKPOINT,
    DataSource,
    _atomic_write_bytes,
    atomic_write_text,
    load_checkpoint,
    run_split,
)

REFERENCE = "reference.npz"
REFERENCE_VERSION = 1
DEFAULT_MODEL = "cgan-bp"  # resources/models/<name>/: the bundled default run
DEFAULT_MAX_ROUNDS = 10
# Generated rows beyond these sizes are junk (no MP composition has more than 8 elements), and the
# exhaustive searches over their oxidation states would take seconds to minutes per row: they are not
# balanced (more than MAX_BALANCE_ELEMENTS), measured (MAX_ASSIGNMENTS) or SMACT-screened (more than
# SMACT_MAX_COMBINATIONS combinations of SMACT's oxidation states; smact_valid False).
MAX_BALANCE_ELEMENTS = 8
MAX_ASSIGNMENTS = 10**6
SMACT_MAX_COMBINATIONS = 20_000  # about 25 ms per formula at most
BALANCE_METHODS = ("none", "mh", "exact")
OXIDATION_TABLES = ("common", "all", "icsd")
OUTPUT_FORMATS = (".csv", ".parquet", ".json")
COLUMNS = (
    "target",
    "draw",
    "raw_composition",
    "composition",
    "formula",
    "n_elements",
    "valence_raw",
    "valence",
    "charge_neutral",
    "unbalanceable",
    "balance_iterations",
    "balance_skipped",
    "smact_valid",
    "predicted_property",
    "predicted_property_balanced",
    "nearest_formula",
    "nearest_property",
    "nearest_distance",
    "novel",
)
_SYMBOL = re.compile(r"[A-Z][a-z]*")
_SMACT_METALS = frozenset(smact_metals)
_ALL_SYMBOLS = tuple(e.symbol for e in Element)


# MH iterations per chain for interactive generation (the paper's reproduction uses the authors' 10,000)
GENERATE_MAX_ITERATIONS = 3_000


class GenerateError(ValueError):
    """A generation request that cannot be served (bad input, contradictory constraints, no model)."""


class GenerateWarning(UserWarning):
    """Generation went ahead, but with a caveat (extrapolation, rows dropped, cache not written)."""


class ExtrapolationWarning(GenerateWarning):
    """A target outside the property range of the model's training split."""


# ----------------------------------------------------------------------------------------------------------
# Constraints


def _symbols(value: str | Iterable[str] | None, name: str) -> tuple[str, ...]:
    """Element symbols from ``"Li,O"`` or ``["Li", "O"]``; unknown or misspelt symbols are refused."""
    if value is None:
        return ()
    try:
        items = value.split(",") if isinstance(value, str) else list(value)
    except TypeError:
        raise GenerateError(f"{name}: expected element symbols, got {value!r}") from None
    if not items or (isinstance(value, str) and not value.strip()):
        raise GenerateError(f"{name}: no element symbols given")
    out = []
    for item in items:
        if not isinstance(item, str):
            raise GenerateError(f"{name}: element symbols must be strings, got {item!r}")
        symbol = item.strip()
        if not symbol:
            raise GenerateError(f"{name}: empty element symbol in {value!r}")
        if not Element.is_valid_symbol(symbol):
            guess = symbol[:1].upper() + symbol[1:].lower()
            hint = f" (did you mean {guess!r}?)" if Element.is_valid_symbol(guess) else ""
            raise GenerateError(f"{name}: unknown element symbol {symbol!r}{hint}")
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
                    f"{name}: {', '.join(outside)} not in the model's vocabulary of {len(vocab)} elements"
                )
        both = [s for s in needed if s in banned]
        if both:
            raise GenerateError(f"contradictory constraints: {', '.join(both)} both required and excluded")
        if elements is not None:
            stray = [s for s in needed if s not in only]
            if stray:
                raise GenerateError(
                    f"contradictory constraints: required {', '.join(stray)} not among elements "
                    f"{','.join(only)}"
                )
        if max_elements is not None:
            if isinstance(max_elements, bool) or not isinstance(max_elements, numbers.Integral):
                raise GenerateError(f"max_elements must be an integer, got {max_elements!r}")
            if max_elements < 1:
                raise GenerateError(f"max_elements must be at least 1, got {max_elements}")
            if len(needed) > max_elements:
                raise GenerateError(
                    f"contradictory constraints: {len(needed)} required elements ({', '.join(needed)}) "
                    f"but max_elements={max_elements}"
                )
            max_elements = int(max_elements)
        allowed = np.ones(len(vocab), dtype=bool)
        if elements is not None:
            allowed[:] = False
            allowed[[vocab.index(s) for s in only]] = True
        allowed[[vocab.index(s) for s in banned if s in vocab]] = False
        if not allowed.any():
            raise GenerateError("contradictory constraints: every element of the model is excluded")
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
            symbols = set(_SYMBOL.findall(formula))
            too_many = self.max_elements is not None and len(symbols) > self.max_elements
            if not symbols or symbols - allowed or required - symbols or too_many:
                bad.append(formula)
        return bad


# ----------------------------------------------------------------------------------------------------------
# The training split as a compact nearest-neighbour reference


def _reference_key(payload: dict) -> str:
    """What identifies a run's training split: vocabulary, data source and split."""
    return json.dumps(
        {
            "version": REFERENCE_VERSION,
            "vocabulary": list(payload["vocabulary"]),
            "data": payload["data"],
            "split": payload["split"],
        },
        sort_keys=True,
    )


def training_split(payload: dict) -> Dataset:
    """The training split of a checkpoint's run, reloaded from its data source (seconds for MP)."""
    source = DataSource(**payload["data"])
    try:
        dataset = source.load()
    except DataError as err:
        raise GenerateError(
            f"cannot reload the model's training data to find nearest compositions: {err}"
        ) from None
    if dataset.vocabulary.symbols != tuple(payload["vocabulary"]):
        raise GenerateError(
            f"the model's training data {source.csv or 'bundled MP set'!r} has changed since training: "
            f"{len(dataset.vocabulary)} elements, the model has {len(payload['vocabulary'])}"
        )
    return run_split(dataset, payload["split"]).train


@dataclass(frozen=True, eq=False)
class Reference:
    """A training split reduced to what generation needs: sparse x^b (N, V), property (N,), formulas."""

    x_b: sparse.csr_matrix
    y: np.ndarray
    formulas: tuple[str, ...]
    key: str
    formula_set: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "formula_set", frozenset(self.formulas))

    def __len__(self) -> int:
        return len(self.formulas)

    @classmethod
    def from_dataset(cls, dataset: Dataset, key: str) -> Reference:
        x_b = sparse.csr_matrix(dataset.x_b(), dtype=np.float64)
        return cls(x_b, dataset.y.astype(np.float64), tuple(dataset.frame["reduced_formula"]), key)

    def save(self, path: Path) -> None:
        """Atomic ``.npz`` write (no pickled objects: loads with ``allow_pickle=False``)."""
        arrays = {
            "version": np.array([REFERENCE_VERSION]),
            "key": np.frombuffer(self.key.encode(), dtype=np.uint8),
            "indptr": self.x_b.indptr.astype(np.int64),
            "indices": self.x_b.indices.astype(np.int32),
            "data": self.x_b.data,
            "shape": np.array(self.x_b.shape, dtype=np.int64),
            "y": self.y,
            "formulas": np.frombuffer("\n".join(self.formulas).encode(), dtype=np.uint8),
        }
        _atomic_write_bytes(path, lambda handle: np.savez_compressed(handle, **arrays))

    @classmethod
    def load(cls, path: Path) -> Reference:
        with np.load(path, allow_pickle=False) as npz:
            if int(npz["version"][0]) != REFERENCE_VERSION:
                raise ValueError(f"reference version {int(npz['version'][0])}")
            shape = tuple(int(s) for s in npz["shape"])
            x_b = sparse.csr_matrix((npz["data"], npz["indices"], npz["indptr"]), shape=shape)
            text = npz["formulas"].tobytes().decode()
            formulas = tuple(text.split("\n")) if text else ()
            reference = cls(x_b, npz["y"], formulas, npz["key"].tobytes().decode())
        if not (len(reference.formulas) == len(reference.y) == shape[0]):
            raise ValueError("inconsistent reference arrays")
        return reference


def write_reference(run_dir: Path | str, train_split: Dataset | None = None) -> Path:
    """Write ``reference.npz`` (the training split for nearest compositions and novelty) into a run.

    ``train_split``: the run's training split if already in memory (e.g. at the end of training);
    otherwise it is reloaded from the checkpoint's data source. Returns the file's path.
    """
    run_dir = Path(run_dir)
    payload = load_checkpoint(run_dir)
    if train_split is None:
        train_split = training_split(payload)
    elif train_split.vocabulary.symbols != tuple(payload["vocabulary"]):
        raise GenerateError("train_split has another element vocabulary than the run's checkpoint")
    path = (run_dir if run_dir.is_dir() else run_dir.parent) / REFERENCE
    Reference.from_dataset(train_split, _reference_key(payload)).save(path)
    return path


def load_reference(run_dir: Path | None, payload: dict) -> Reference:
    """The run's cached reference if it matches the checkpoint; else rebuilt (and cached if possible)."""
    key = _reference_key(payload)
    path = None if run_dir is None else run_dir / REFERENCE
    if path is not None and path.is_file():
        try:
            reference = Reference.load(path)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, UnicodeDecodeError) as err:
            warnings.warn(f"{path} is unreadable ({err}); rebuilding it", GenerateWarning, stacklevel=3)
        else:
            if reference.key == key:
                return reference
    reference = Reference.from_dataset(training_split(payload), key)
    if path is not None:
        try:
            reference.save(path)
        except OSError as err:
            warnings.warn(
                f"cannot cache the training reference in {path} ({err}); it is rebuilt on every run",
                GenerateWarning,
                stacklevel=3,
            )
    return reference


# ----------------------------------------------------------------------------------------------------------
# Output


def check_output(path: Path | str, force: bool = False) -> Path:
    """Refuse an output path before any work: unknown suffix, existing file (without force), no parent."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise GenerateError(
            f"output {str(path)!r}: unknown format {suffix or '(no suffix)'!r}; use .csv, .parquet or .json"
        )
    if path.is_dir():
        raise GenerateError(f"output {str(path)!r} is a directory")
    if path.exists() and not force:
        raise GenerateError(f"output {str(path)!r} exists; pass --force (force=True) to overwrite it")
    if not path.parent.is_dir():
        raise GenerateError(f"output {str(path)!r}: directory {str(path.parent)!r} does not exist")
    if suffix == ".parquet" and importlib.util.find_spec("pyarrow") is None:
        raise GenerateError(
            f"output {str(path)!r}: writing Parquet needs pyarrow, which is not installed; "
            "run `pip install pyarrow` or write .csv or .json"
        )
    return path


def write_table(frame: pd.DataFrame, path: Path | str, force: bool = False) -> Path:
    """Write generated rows as CSV, JSON (a list of records) or Parquet, atomically (temp file + rename)."""
    path = check_output(path, force)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        atomic_write_text(path, frame.to_csv(index=False))
    elif suffix == ".json":
        atomic_write_text(path, frame.to_json(orient="records", indent=2) + "\n")
    else:
        data = frame.to_parquet(None, index=False)
        _atomic_write_bytes(path, lambda handle: handle.write(data))
    return path


# ----------------------------------------------------------------------------------------------------------
# The generator


def bundled_model_dir() -> Path:
    return Path(str(resources.files("stoichgen") / "resources" / "models" / DEFAULT_MODEL))


def _targets(target: float | Sequence[float]) -> np.ndarray:
    values = np.atleast_1d(np.asarray(target, dtype=object)).ravel()
    if values.size == 0:
        raise GenerateError("no target given")
    out = []
    for value in values:
        if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
            raise GenerateError(f"target {value!r} is not a number")
        number = float(value)
        if not math.isfinite(number):
            raise GenerateError(f"target {value!r} is not a finite number")
        out.append(number)
    return np.array(out)


def _positive_int(value: object, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise GenerateError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _derived_seed(*entropy: int) -> int:
    return int(np.random.SeedSequence(list(entropy)).generate_state(1, dtype=np.uint32)[0])


def _fraction_dicts(x: np.ndarray, symbols: tuple[str, ...]) -> list[dict[str, float]]:
    rows, cols = np.nonzero(x)
    out: list[dict[str, float]] = [{} for _ in range(len(x))]
    for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
        out[r][symbols[c]] = float(x[r, c])
    return out


@dataclass
class _Draws:
    """Accepted rows of one target: masked raw vectors and, with ``neutral_only``, their balancing."""

    raw: list[np.ndarray] = field(default_factory=list)
    draw: list[np.ndarray] = field(default_factory=list)
    balanced: list[dict[str, np.ndarray]] = field(default_factory=list)
    n_drawn: int = 0
    n_accepted: int = 0
    empty: int = 0
    constraint: int = 0
    not_neutral: int = 0
    rounds: int = 0


class Generator:
    """A trained CondGAN or CondVAE run, ready to generate annotated compositions at target properties.

    Caches what is costly on the instance: the training reference (``reference.npz``), its
    nearest-neighbour index and the set of training formulas.
    """

    def __init__(
        self, sampler: Sampler, run_dir: Path | str | None = None, reference: Reference | None = None
    ):
        self.sampler = sampler
        self.run_dir = None if run_dir is None else Path(run_dir)
        self._reference = reference
        self._nearest: NearestIndex | None = None

    @classmethod
    def from_run(cls, path: Path | str) -> Generator:
        """Load a run directory (or its ``checkpoint.pt``); ``TrainError`` if missing or corrupt."""
        path = Path(path)
        sampler = Sampler.from_run(path)
        return cls(sampler, path if path.is_dir() else path.parent)

    @classmethod
    def default(cls) -> Generator:
        """The bundled default model (CondGAN on x^bp, trained on the Materials Project set)."""
        run_dir = bundled_model_dir()
        if not (run_dir / CHECKPOINT).is_file():
            raise GenerateError("no bundled default model; pass --model RUN_DIR")
        return cls.from_run(run_dir)

    @property
    def vocabulary(self) -> Vocabulary:
        return self.sampler.vocabulary

    @property
    def property_range(self) -> tuple[float, float]:
        return self.sampler.property_range

    @property
    def reference(self) -> Reference:
        if self._reference is None:
            self._reference = load_reference(self.run_dir, self.sampler.payload)
        return self._reference

    @property
    def nearest(self) -> NearestIndex:
        if self._nearest is None:
            self._nearest = NearestIndex(self.reference.x_b, self.sampler.normaliser, y=self.reference.y)
        return self._nearest

    def generate(
        self,
        target: float | Sequence[float],
        n: int = 256,
        *,
        balance: str = "mh",
        elements: str | Iterable[str] | None = None,
        require: str | Iterable[str] | None = None,
        exclude: str | Iterable[str] | None = None,
        max_elements: int | None = None,
        unique: bool = False,
        seed: int = 0,
        oxidation: str = "common",
        threshold: float = DEFAULT_THRESHOLD,
        neutral_only: bool = False,
        max_rounds: int = DEFAULT_MAX_ROUNDS,
        max_iterations: int = GENERATE_MAX_ITERATIONS,
        max_atoms: int = DEFAULT_MAX_ATOMS,
    ) -> pd.DataFrame:
        """``n`` compositions per target, one row each (columns: module docstring), in draw order.

        ``balance``: ``"none"``, ``"mh"`` (paper Sec. 4) or ``"exact"`` (``charge.balance``).
        ``elements`` (only these may appear), ``require``, ``exclude``: symbols, as ``"Li,O"`` or a list.
        ``max_elements``: at most this many elements per composition. ``unique``: keep the first row per
        (target, formula). ``neutral_only``: also reject rows not charge neutral after balancing.
        Targets outside the training property range warn (``ExtrapolationWarning``); requested rows that
        cannot be filled within ``max_rounds`` redraw rounds are dropped with a ``GenerateWarning``.
        ``max_iterations``: MH iterations per chain (the authors used 10,000; the default 3,000 keeps a
        256-row call under 2 s, and on the bundled model only about 1 % of chains need more).
        ``max_atoms``: the largest formula unit ``"exact"`` balancing searches (``charge.exact_balance``).
        The same inputs and ``seed`` give the same rows.
        """
        targets = _targets(target)
        n = _positive_int(n, "n")
        seed = _positive_int(seed, "seed", 0)
        max_rounds = _positive_int(max_rounds, "max_rounds", 0)
        max_iterations = _positive_int(max_iterations, "max_iterations")
        max_atoms = _positive_int(max_atoms, "max_atoms", 2)
        if balance not in BALANCE_METHODS:
            raise GenerateError(f"unknown balancing method {balance!r}; choose none, mh or exact")
        if oxidation not in OXIDATION_TABLES:
            raise GenerateError(f"unknown oxidation table {oxidation!r}; choose common, all or icsd")
        if not (isinstance(threshold, numbers.Real) and 0 < threshold < 1):
            raise GenerateError(f"threshold must be a number in (0, 1), got {threshold!r}")
        constraints = Constraints.resolve(self.vocabulary, elements, require, exclude, max_elements)
        lo, hi = self.property_range
        for t in targets:
            if not lo <= t <= hi:
                warnings.warn(
                    f"target {t:g} is outside the model's training range of "
                    f"{self.sampler.payload.get('property_name', 'the property')} [{lo:.4g}, {hi:.4g}]: "
                    "this is extrapolation, expect compositions off target",
                    ExtrapolationWarning,
                    stacklevel=2,
                )
        options = {
            "method": balance,
            "oxidation": oxidation,
            "threshold": float(threshold),
            "max_iterations": max_iterations,
            "max_atoms": max_atoms,
        }
        first = self.sampler.sample(targets, n, seed).reshape(len(targets), n, -1)  # (T, n, D)
        per_target = []
        for t_index, t in enumerate(targets):
            draws = self._draw(
                t, t_index, n, first[t_index], seed, constraints, neutral_only, max_rounds, options
            )
            if draws.n_accepted < n:
                warnings.warn(
                    f"target {t:g}: only {draws.n_accepted} of {n} samples satisfy the constraints "
                    f"({constraints.description}{', neutral only' if neutral_only else ''}) after "
                    f"{draws.rounds} redraw rounds and {draws.n_drawn} draws; {n - draws.n_accepted} "
                    "rows dropped (relax the constraints or raise max_rounds)",
                    GenerateWarning,
                    stacklevel=2,
                )
            per_target.append(draws)
        frame = self._annotate(targets, per_target, constraints, seed, neutral_only, options)
        n_rows, skipped = len(frame), frame.attrs.get("balance_skipped", 0)
        if unique:
            frame = frame.drop_duplicates(subset=["target", "formula"], keep="first").reset_index(drop=True)
        frame.attrs.update(
            {
                "model": str(self.run_dir) if self.run_dir is not None else None,
                "targets": targets.tolist(),
                "n": n,
                "balance": balance,
                "oxidation": oxidation,
                "threshold": float(threshold),
                "max_iterations": max_iterations,
                "max_atoms": max_atoms,
                "seed": seed,
                "constraints": constraints.description,
                "n_drawn": sum(d.n_drawn for d in per_target),
                "redrawn": sum(d.empty + d.constraint + d.not_neutral for d in per_target),
                "redrawn_empty": sum(d.empty for d in per_target),
                "redrawn_constraint": sum(d.constraint for d in per_target),
                "redrawn_not_neutral": sum(d.not_neutral for d in per_target),
                "dropped": len(targets) * n - n_rows,
                "duplicates_removed": n_rows - len(frame),
                "extrapolation": bool(((targets < lo) | (targets > hi)).any()),
                "balance_skipped": skipped,
            }
        )
        return frame

    # -- drawing with constraints ----------------------------------------------------------------------

    def _draw(
        self, target, t_index, n, first, seed, constraints, neutral_only, max_rounds, options
    ) -> _Draws:
        """Accept rows in draw order until ``n`` pass; redraw rejected ones with fresh noise."""
        n_b = len(self.vocabulary)
        budget = max(100 * n, 10_000)
        draws, batch = _Draws(), first
        for round_ in range(max_rounds + 1):
            if round_:
                need = n - draws.n_accepted
                rate = draws.n_accepted / draws.n_drawn if draws.n_drawn else 0.0
                size = math.ceil(1.25 * need / rate) + 8 if rate > 0 else 4 * max(need, draws.n_drawn)
                size = min(size, budget - draws.n_drawn)
                if size <= 0:
                    break
                batch = self.sampler.sample(target, size, _derived_seed(seed, t_index, round_))
                draws.rounds = round_
            batch = np.array(batch, dtype=float)
            batch[:, :n_b][:, ~constraints.allowed] = 0.0  # disallowed elements cannot pass the threshold
            present = threshold_rows(batch[:, :n_b], options["threshold"]) > 0
            nonempty = present.any(axis=1)
            valid = nonempty & constraints.satisfied(present)
            passed = valid.copy()
            balanced = None
            if neutral_only and valid.any():
                rows = np.flatnonzero(valid)
                result = self._balance(batch[rows, :n_b], options, _derived_seed(seed, t_index, round_, 1))
                passed[rows] = result["charge_neutral"]
                balanced = (rows, result)
            accepted = np.flatnonzero(passed)[: n - draws.n_accepted]
            cut = accepted[-1] + 1 if len(accepted) == n - draws.n_accepted else len(batch)
            draws.empty += int((~nonempty[:cut]).sum())
            draws.constraint += int((nonempty & ~valid)[:cut].sum())
            draws.not_neutral += int((valid & ~passed)[:cut].sum())
            draws.raw.append(batch[accepted])
            draws.draw.append(draws.n_drawn + accepted)
            if balanced is not None:
                rows, result = balanced
                pick = np.searchsorted(rows, accepted)
                draws.balanced.append({name: result[name][pick] for name in _BALANCE_FIELDS})
            draws.n_drawn += int(cut)
            draws.n_accepted += len(accepted)
            if draws.n_accepted == n:
                break
        return draws

    def _balance(self, x_b: np.ndarray, options: dict, seed: int) -> dict[str, np.ndarray]:
        """``charge.balance`` fields for (M, V) raw fractions, plus ``balance_skipped``.

        Rows with more than ``MAX_BALANCE_ELEMENTS`` elements are only measured, not balanced (MH chains
        on such junk rows can run all their iterations at seconds each); rows with more than
        ``MAX_ASSIGNMENTS`` oxidation-state assignments are not even measured (NaN valences).
        """
        kept = threshold_rows(x_b, options["threshold"])
        present = kept > 0
        measurable = _checkable(present, self.vocabulary, options["oxidation"])
        balanceable = measurable & (present.sum(axis=1) <= MAX_BALANCE_ELEMENTS)
        fields = {
            "x": kept,
            "valence_raw": np.full(len(kept), np.nan),
            "valence": np.full(len(kept), np.nan),
            "charge_neutral": np.zeros(len(kept), dtype=bool),
            "unbalanceable": np.zeros(len(kept), dtype=bool),
            "iterations": np.zeros(len(kept), dtype=np.int64),
            "balance_skipped": ~balanceable if options["method"] != "none" else ~measurable,
        }
        for rows, method in ((balanceable, options["method"]), (measurable & ~balanceable, "none")):
            if rows.any():
                result = balance_valence(
                    x_b[rows],
                    self.vocabulary,
                    method,
                    oxidation=options["oxidation"],
                    threshold=options["threshold"],
                    max_iterations=options["max_iterations"],
                    max_atoms=options["max_atoms"],
                    rng=seed,
                )
                for name in _BALANCE_FIELDS[:-1]:
                    fields[name][rows] = getattr(result, name)
        return fields

    # -- annotation ------------------------------------------------------------------------------------

    def _annotate(self, targets, per_target, constraints, seed, neutral_only, options) -> pd.DataFrame:
        n_b, symbols = len(self.vocabulary), self.vocabulary.symbols
        counts = [d.n_accepted for d in per_target]
        if sum(counts) == 0:
            return pd.DataFrame({name: pd.Series(dtype=_DTYPES.get(name, float)) for name in COLUMNS})
        raw = np.vstack([r for d in per_target for r in d.raw])  # (M, D), masked, data units
        if neutral_only:
            pieces = [b for d in per_target for b in d.balanced]
            fields = {name: np.concatenate([b[name] for b in pieces]) for name in _BALANCE_FIELDS}
        else:
            fields = self._balance(raw[:, :n_b], options, seed)
        x = fields["x"]  # (M, V) balanced fractions
        skipped = int(fields["balance_skipped"].sum())
        if skipped:
            warnings.warn(
                f"{skipped} generated compositions have too many elements to balance (more than "
                f"{MAX_BALANCE_ELEMENTS}, or {MAX_ASSIGNMENTS:,} oxidation-state assignments): left as "
                "generated, balance_skipped=True",
                GenerateWarning,
                stacklevel=3,
            )
        present = x > 0
        if not (constraints.satisfied(present) & present.any(axis=1)).all():
            raise RuntimeError("internal error: a balanced composition breaks the constraints")
        kept = threshold_rows(raw[:, :n_b], options["threshold"])
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="No Pauling electronegativity")
            balanced_fractions = _fraction_dicts(x, symbols)
            formulas = [integer_formula(f) for f in balanced_fractions]
            unique_formulas = sorted(set(formulas))
            valid = dict(zip(unique_formulas, _smact(unique_formulas), strict=True))
        leaks = constraints.check_formulas(formulas)
        if leaks:
            raise RuntimeError(f"internal error: generated formulas break the constraints: {leaks[:5]}")
        predicted = np.full(len(x), np.nan)
        predicted_balanced = np.full(len(x), np.nan)
        if isinstance(self.sampler.model, CondGAN):
            predicted = self.sampler.predict_property(raw)
            predicted_balanced = self.sampler.predictor.predict_fractions(x)
        distance, index = self.nearest.query(x)
        reference = self.reference
        frame = pd.DataFrame(
            {
                "target": np.repeat(targets, counts),
                "draw": np.concatenate([i for d in per_target for i in d.draw]).astype(np.int64),
                "raw_composition": [paper_string(f) for f in _fraction_dicts(kept, symbols)],
                "composition": [paper_string(f) for f in balanced_fractions],
                "formula": formulas,
                "n_elements": present.sum(axis=1).astype(np.int64),
                "valence_raw": fields["valence_raw"].astype(float),
                "valence": fields["valence"].astype(float),
                "charge_neutral": fields["charge_neutral"].astype(bool),
                "unbalanceable": fields["unbalanceable"].astype(bool),
                "balance_iterations": fields["iterations"].astype(np.int64),
                "balance_skipped": fields["balance_skipped"].astype(bool),
                "smact_valid": np.array([valid[f] for f in formulas], dtype=bool),
                "predicted_property": predicted,
                "predicted_property_balanced": predicted_balanced,
                "nearest_formula": [reference.formulas[i] for i in index],
                "nearest_property": reference.y[index],
                "nearest_distance": distance,
                "novel": np.array([f not in reference.formula_set for f in formulas], dtype=bool),
            }
        )
        frame.attrs["balance_skipped"] = skipped
        return frame


_BALANCE_FIELDS = (
    "x",
    "valence_raw",
    "valence",
    "charge_neutral",
    "unbalanceable",
    "iterations",
    "balance_skipped",
)
_DTYPES = {
    "target": float,
    "draw": np.int64,
    "raw_composition": object,
    "composition": object,
    "formula": object,
    "n_elements": np.int64,
    "charge_neutral": bool,
    "unbalanceable": bool,
    "balance_iterations": np.int64,
    "balance_skipped": bool,
    "smact_valid": bool,
    "nearest_formula": object,
    "novel": bool,
}


def _state_counts(vocab: Vocabulary, table: str) -> np.ndarray:
    return np.array([len(oxidation_states(s, table)) for s in vocab.symbols], dtype=float)


def _checkable(present: np.ndarray, vocab: Vocabulary, table: str) -> np.ndarray:
    """Rows (N, V) whose oxidation-state assignments number at most ``MAX_ASSIGNMENTS`` (or none). (N,)."""
    counts = _state_counts(vocab, table)
    log_product = present @ np.log(np.maximum(counts, 1.0))
    return (present & (counts == 0)).any(axis=1) | (log_product <= math.log(MAX_ASSIGNMENTS) + 1e-9)


@functools.cache
def _smact_states() -> dict[str, int]:
    """How many oxidation states SMACT's validity search tries per element (its default ICSD24 set)."""
    try:  # private in smact 4.0.2 (pinned); the pymatgen ICSD table is the fallback estimate
        from smact.screening import ICSD24FilterConfig, _get_icsd24_oxidation_dict

        config = ICSD24FilterConfig()
        table = _get_icsd24_oxidation_dict(
            include_zero=config.include_zero, consensus=config.consensus, commonality=config.commonality
        )
        return {symbol: len(states) for symbol, states in table.items()}
    except (ImportError, AttributeError, TypeError):
        return {symbol: len(oxidation_states(symbol, "icsd")) for symbol in _ALL_SYMBOLS}


def _smact_checkable(formula: str) -> bool:
    """Whether SMACT's search is affordable. It tries every combination of the elements' states (about
    1 us each) and stops early only on success, so junk rows with many elements would take seconds to
    minutes; all-metal rows (SMACT's alloys) and single elements are decided without a search."""
    symbols = set(_SYMBOL.findall(formula))
    if len(symbols) <= 1 or symbols <= _SMACT_METALS:
        return True
    counts = _smact_states()
    return math.prod(counts.get(s, 0) for s in symbols) <= SMACT_MAX_COMBINATIONS


def _smact(formulas: Sequence[str]) -> list[bool]:
    """SMACT validity per formula; formulas SMACT cannot check (or too large to check) count as invalid."""
    out = []
    for formula in formulas:
        try:
            out.append(_smact_checkable(formula) and bool(smact_valid([formula])[0]))
        except ValueError:
            out.append(False)
    return out
