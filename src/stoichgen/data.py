"""Datasets of compositions with a property, their vector representations, normaliser and splits.

>>> ds = load_mp_formation_energy()
>>> len(ds.vocabulary), ds.x_bp().shape[1]
(89, 147)
"""

from __future__ import annotations

import gzip
import hashlib
import io
import warnings
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pymatgen.core import Composition

from stoichgen.chem.composition import Vocabulary, fractions_matrix, parse_formula
from stoichgen.errors import DataError, FormulaError
from stoichgen.io import read_written_table

MP_FILE = "mp_formation_energy.csv.gz"
DESCRIPTOR_FILE = "xenonpy_element_features.csv"
DESCRIPTOR_SHA256 = "4bb9e660fe1ee6123fac014d77056ec6aad1b917c7c4ac6a5af006c3721983f7"
PAPER_N_TEST = 5506  # the paper's test split
PAPER_N_ROWS = 49546  # rows of the paper's data file, whose test share other data sets keep
Representation = Literal["b", "bp"]
Errors = Literal["report", "raise"]


def _resource(name: str) -> Path:
    return Path(str(resources.files("stoichgen") / "resources" / name))


@cache
def element_descriptors() -> pd.DataFrame:
    """The 58 XenonPy elemental descriptors of 94 elements (H..Pu), indexed by symbol. Shape (94, 58).

    The file is checked against its published checksum: every x^bp model depends on these exact values.
    """
    return _read_descriptors(_resource(DESCRIPTOR_FILE))


def _read_descriptors(path: Path) -> pd.DataFrame:
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != DESCRIPTOR_SHA256:
        raise DataError(
            f"descriptor table {str(path)!r} has sha256 {digest}, not the published {DESCRIPTOR_SHA256}: "
            "the file was altered; reinstall stoichgen"
        )
    return pd.read_csv(io.BytesIO(raw), index_col="element")


@dataclass(frozen=True)
class BadRow:
    """One skipped input row: its line in the file (the header is line 1), raw value and reason."""

    line: int
    raw: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.raw!r}: {self.reason}"


@dataclass(frozen=True)
class Conflict:
    """A duplicate row (same reduced formula as an earlier, kept row) whose property differs from it."""

    line: int
    raw: str
    value: float
    kept_line: int
    kept_raw: str
    kept_value: float

    def __str__(self) -> str:
        return (
            f"line {self.line}: {self.raw!r} = {self.value:g} differs from the kept line {self.kept_line}: "
            f"{self.kept_raw!r} = {self.kept_value:g}"
        )


@dataclass(frozen=True)
class LoadReport:
    """What loading a table read, skipped (with reasons) and de-duplicated (conflicting duplicates listed)."""

    source: str
    n_read: int
    bad_rows: tuple[BadRow, ...]
    n_duplicates: int
    conflicts: tuple[Conflict, ...] = ()

    @property
    def n_loaded(self) -> int:
        """Rows kept: read, less the skipped and the duplicates."""
        return self.n_read - len(self.bad_rows) - self.n_duplicates

    def summary(self) -> str:
        """Counts, then every skipped row and conflicting duplicate with its line, for a person."""
        lines = [
            f"source: {self.source}",
            f"rows read: {self.n_read}",
            f"rows skipped: {len(self.bad_rows)}",
            f"duplicates removed (same reduced formula, first kept): {self.n_duplicates}, "
            f"of which {len(self.conflicts)} with a different property",
            f"rows loaded: {self.n_loaded}",
        ]
        lines += [f"  skipped {bad}" for bad in self.bad_rows]
        lines += [f"  conflicting duplicate {conflict}" for conflict in self.conflicts]
        return "\n".join(lines)


@dataclass(frozen=True)
class Dataset:
    """Compositions with one property each.

    ``frame`` has columns ``line`` (line in the source file), ``formula`` (as written), ``composition``
    (pymatgen ``Composition``), ``reduced_formula`` and ``property``. The vocabulary is fixed when the
    dataset is loaded and kept by its splits, so every split of one file shares the same columns.
    """

    frame: pd.DataFrame
    vocabulary: Vocabulary
    report: LoadReport
    property_name: str = "property"
    description: str = ""
    _x_b: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_x_b", fractions_matrix(list(self.frame["composition"]), self.vocabulary))
        self._x_b.setflags(write=False)

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def y(self) -> np.ndarray:
        """The property, shape (N,)."""
        return self.frame["property"].to_numpy(dtype=float)

    def x_b(self) -> np.ndarray:
        """Atomic fractions over the vocabulary. Shape (N, V)."""
        return self._x_b

    def x_p(self) -> np.ndarray:
        """Fraction-weighted mean of the 58 descriptors (paper Sec. 2). Shape (N, 58)."""
        return self._x_b @ descriptor_matrix(self.vocabulary)

    def x_bp(self) -> np.ndarray:
        """[x^b, x^p]. Shape (N, V + 58)."""
        return np.hstack([self._x_b, self.x_p()])

    def features(self, representation: Representation) -> np.ndarray:
        """``x_b()`` for ``"b"``, ``x_bp()`` for ``"bp"``; ``DataError`` otherwise."""
        if representation == "b":
            return self.x_b()
        if representation == "bp":
            return self.x_bp()
        raise DataError(f"unknown representation {representation!r}; expected 'b' or 'bp'")

    def subset(self, mask: np.ndarray, description: str) -> Dataset:
        """The rows where the boolean ``mask`` is true (same vocabulary and report), described so."""
        return Dataset(
            self.frame[np.asarray(mask)].reset_index(drop=True),
            self.vocabulary,
            self.report,
            self.property_name,
            description,
        )

    def random_split(self, seed: int = 0, n_test: int = PAPER_N_TEST) -> Split:
        """The paper's random split: ``n_test`` test rows, the rest train (paper Sec. 5.1).

        Args:
            seed: the split's random seed; the same seed gives the same split.
            n_test: test rows, between 1 and ``len(self) - 1`` (default: the paper's 5,506).

        Raises:
            DataError: fewer than 2 rows, or ``n_test`` out of range.
        """
        if len(self) < 2:
            raise DataError(
                f"{self.report.source}: {len(self)} usable composition(s) after skipping "
                f"{len(self.report.bad_rows)} bad row(s) and removing {self.report.n_duplicates} "
                "duplicate(s) of the same reduced formula; a train/test split needs at least 2 "
                "distinct compositions"
            )
        if not 0 < n_test < len(self):
            raise DataError(f"n_test={n_test} must be between 1 and {len(self) - 1} for {len(self)} rows")
        order = np.random.default_rng(seed).permutation(len(self))
        is_test = np.zeros(len(self), dtype=bool)
        is_test[order[:n_test]] = True
        info = {"kind": "random", "seed": int(seed), "n_test": int(n_test)}
        return Split(
            self.subset(~is_test, f"random split seed {seed}: train"),
            self.subset(is_test, f"random split seed {seed}: test"),
            info,
        )

    def range_split(self, y_max: float) -> Split:
        """Extrapolation split (paper Fig. 1B): train on property <= y_max, test on the rest."""
        is_train = self.y <= y_max
        if not is_train.any() or is_train.all():
            raise DataError(
                f"training on property <= {y_max:g} leaves an empty train or test set (the property of "
                f"{self.report.source} spans [{self.y.min():.4g}, {self.y.max():.4g}])"
            )
        info = {"kind": "range", "y_max": float(y_max)}
        return Split(
            self.subset(is_train, f"range split y <= {y_max}: train"),
            self.subset(~is_train, f"range split y <= {y_max}: test"),
            info,
        )


@dataclass(frozen=True)
class Split:
    """A train and a test ``Dataset`` of one source, and how they were made (``info``: kind, seed, ...)."""

    train: Dataset
    test: Dataset
    info: dict


@cache
def _descriptor_matrix(symbols: tuple[str, ...]) -> np.ndarray:
    table = element_descriptors()
    missing = [s for s in symbols if s not in table.index]
    if missing:
        raise DataError(f"elements {missing} have no descriptors in the XenonPy table (H..Pu)")
    matrix = table.loc[list(symbols)].to_numpy(dtype=float)
    matrix.setflags(write=False)
    return matrix


def descriptor_matrix(vocab: Vocabulary) -> np.ndarray:
    """Descriptor rows of the vocabulary's elements. Shape (V, 58)."""
    return _descriptor_matrix(vocab.symbols)


def _check_row(formula: object, value: object) -> tuple[Composition, float]:
    if not isinstance(formula, str):
        raise FormulaError("missing formula")
    comp = parse_formula(formula)
    absent = [el.symbol for el in comp if el.symbol not in element_descriptors().index]
    if absent:
        raise FormulaError(f"element {absent[0]!r} has no descriptors in the XenonPy table (H..Pu)")
    text = "" if value is None else str(value).strip()
    try:
        number = float(text)
    except ValueError:
        raise FormulaError(f"property {text!r} is not a number") from None
    if not np.isfinite(number):
        raise FormulaError(f"property {text!r} is not a finite number")
    return comp, number


def read_table(
    path: Path | str, composition_column: str, property_column: str, *, allow_empty: bool = False
) -> pd.DataFrame:
    """A CSV (or .csv.gz), or the Parquet and JSON that ``generate -o`` writes, as text (``NaN`` is sodium
    nitride); ``DataError`` naming the file and why: unreadable, a column missing, no rows (allow_empty)."""
    source, suffix = str(path), Path(path).suffix.lower()
    opener = gzip.open if source.endswith(".gz") else open
    try:
        if suffix in (".parquet", ".json"):
            table = read_written_table(path, suffix)
        else:  # keep_default_na=False: the formula "NaN" is sodium nitride, not a missing value
            with opener(path, "rt", encoding="utf-8") as handle:
                table = pd.read_csv(handle, dtype=str, keep_default_na=False, na_filter=False)
    except (FileNotFoundError, IsADirectoryError, pd.errors.EmptyDataError) as err:
        why = {FileNotFoundError: "no such file", IsADirectoryError: "is a directory, not a table file"}
        raise DataError(f"{source}: {why.get(type(err), 'file is empty')}") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as err:
        what = {".parquet": "Parquet", ".json": "JSON records"}.get(suffix, "CSV")
        raise DataError(f"{source}: cannot be read as {what}: {str(err).splitlines()[0]}") from None
    for column in (composition_column, property_column):
        if column not in table.columns:
            raise DataError(f"{source}: missing column {column!r}; columns are {list(table.columns)}")
    if table.empty and not allow_empty:
        raise DataError(f"{source}: file has a header but no rows")
    return table


def load_csv(
    path: Path | str,
    composition_column: str = "composition",
    property_column: str = "property",
    errors: Errors = "report",
    vocabulary: Vocabulary | None = None,
) -> Dataset:
    """Load a composition/property CSV.

    Unusable rows are skipped and listed in ``dataset.report`` (``errors="report"``), or the first one
    raises ``DataError`` (``errors="raise"``). Rows with the same reduced formula as an earlier row are
    removed (first kept) and counted, as in the paper. Formulas are parsed strictly (pymatgen, no
    dummy species, no spreadsheet dates); nothing is repaired.

    Args:
        path: the CSV file.
        composition_column: the column of formulas (``Fe2O3``, ``CuSO4·5H2O``).
        property_column: the column of property values.
        errors: ``"report"`` (skip bad rows and list them) or ``"raise"`` (stop at the first).
        vocabulary: a model's element vocabulary, to refuse rows with other elements (default: the
            elements present).

    Raises:
        DataError: an unreadable file, a missing column, no usable row, or a bad row with ``"raise"``.

    Examples:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "mine.csv"
        >>> pd.DataFrame({"f": ["NaCl", "2-Feb", "Fe2O3"], "gap": [8.5, 1, 2.2]}).to_csv(path, index=False)
        >>> mine = load_csv(path, "f", "gap")
        >>> len(mine), [bad.line for bad in mine.report.bad_rows]
        (2, [3])
    """
    if errors not in ("report", "raise"):
        raise DataError(f"errors must be 'report' or 'raise', got {errors!r}")
    source = str(path)
    table = read_table(path, composition_column, property_column)
    lines, formulas, comps, values, bad = [], [], [], [], []
    for offset, (formula, value) in enumerate(
        zip(table[composition_column], table[property_column], strict=True)
    ):
        line = offset + 2  # the header is line 1
        try:
            comp, number = _check_row(formula, value)
            if vocabulary is not None:
                outside = [el.symbol for el in comp if el.symbol not in vocabulary]
                if outside:
                    raise FormulaError(f"element {outside[0]!r} is not in the model's vocabulary")
        except FormulaError as err:
            if errors == "raise":
                raise DataError(f"{source}: line {line}: {formula!r}: {err}") from None
            bad.append(BadRow(line, str(formula), str(err)))
            continue
        lines.append(line)
        formulas.append(formula)
        comps.append(comp)
        values.append(number)
    with warnings.catch_warnings():
        # pymatgen warns that noble gases have no Pauling electronegativity while ordering formulas.
        warnings.filterwarnings("ignore", message="No Pauling electronegativity")
        reduced = [c.reduced_formula for c in comps]
    frame = pd.DataFrame(
        {
            "line": lines,
            "formula": formulas,
            "composition": comps,
            "reduced_formula": reduced,
            "property": values,
        }
    )
    duplicated = frame["reduced_formula"].duplicated(keep="first").to_numpy()
    first = frame[~duplicated].set_index("reduced_formula")
    conflicts = tuple(
        Conflict(
            row.line,
            row.formula,
            row.property,
            *first.loc[row.reduced_formula, ["line", "formula", "property"]],
        )
        for row in frame[duplicated].itertuples()
        if row.property != first.at[row.reduced_formula, "property"]
    )
    frame = frame[~duplicated].reset_index(drop=True)
    report = LoadReport(source, len(table), tuple(bad), int(duplicated.sum()), conflicts)
    if frame.empty:
        raise DataError(f"{source}: no usable rows\n{report.summary()}")
    vocab = vocabulary or Vocabulary.from_compositions(frame["composition"])
    return Dataset(frame, vocab, report, property_column, source)


@cache
def _load_mp() -> Dataset:
    return load_csv(_resource(MP_FILE), composition_column="Composition", property_column="FormationEnergy")


def load_mp_formation_energy() -> Dataset:
    """The paper's Materials Project set: compositions and formation energy (eV/atom), bundled.

    49,543 compositions over 89 elements (3 spreadsheet-mangled rows of the source are skipped and
    reported). Source: ``inputs/training.csv`` of yoshihidesawada/CompGAN (MIT licence, (c) 2019
    Yoshihide Sawada). Cached: the returned dataset is immutable.

    Examples:
        >>> ds = load_mp_formation_energy()
        >>> len(ds), len(ds.report.bad_rows), len(ds.random_split(seed=0).test)
        (49543, 3, 5506)
    """
    return _load_mp()


@dataclass(frozen=True)
class MinMaxNormaliser:
    """Per-column (x - min) / (max - min) (paper Sec. 5.2); constant columns map to 0.

    >>> norm = MinMaxNormaliser.fit(np.array([[0.0, 2.0], [1.0, 4.0]]))
    >>> norm.transform(np.array([[0.5, 3.0]])).tolist()
    [[0.5, 0.5]]
    """

    minimum: tuple[float, ...]
    maximum: tuple[float, ...]

    @classmethod
    def fit(cls, x: np.ndarray) -> MinMaxNormaliser:
        """Each column's minimum and maximum over the rows of ``x``, shape (N, D); ``DataError`` if empty."""
        x = np.asarray(x, dtype=float)
        if x.ndim != 2 or len(x) == 0:
            raise DataError(f"fit needs a non-empty (N, D) matrix, got shape {x.shape}")
        return cls(tuple(x.min(axis=0).tolist()), tuple(x.max(axis=0).tolist()))

    @property
    def _scale(self) -> np.ndarray:
        span = np.asarray(self.maximum) - np.asarray(self.minimum)
        return np.where(span > 0, span, 1.0)

    def _check(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        if x.shape[-1] != len(self.minimum):
            raise DataError(f"expected {len(self.minimum)} columns, got {x.shape[-1]}")
        return x

    def transform(self, x: np.ndarray) -> np.ndarray:
        """``x`` (..., D) in normalised units; ``DataError`` when D is not the fitted width."""
        return (self._check(x) - np.asarray(self.minimum)) / self._scale

    def inverse_transform(self, x: np.ndarray) -> np.ndarray:
        """Normalised ``x`` (..., D) back in data units."""
        return self._check(x) * self._scale + np.asarray(self.minimum)

    def state_dict(self) -> dict[str, list[float]]:
        """Plain lists of floats, so a checkpoint holding it loads with ``weights_only=True``."""
        return {"minimum": list(self.minimum), "maximum": list(self.maximum)}

    @classmethod
    def from_state_dict(cls, state: dict[str, list[float]]) -> MinMaxNormaliser:
        """The normaliser ``state_dict()`` described; ``DataError`` for anything else."""
        if set(state) != {"minimum", "maximum"} or len(state["minimum"]) != len(state["maximum"]):
            raise DataError(f"not a MinMaxNormaliser state: keys {sorted(state)}")
        return cls(tuple(map(float, state["minimum"])), tuple(map(float, state["maximum"])))


@dataclass(frozen=True)
class DataSource:
    """Where a run's data came from, so it can be resumed or evaluated on the same data from any folder:
    the bundled MP set (``csv`` None) or a CSV, whose path is stored absolute.

    >>> DataSource().describe()
    'the bundled MP set'
    >>> Path(DataSource("mine.csv").csv).is_absolute()
    True
    """

    csv: str | None = None
    composition_column: str = "composition"
    property_column: str = "property"

    def __post_init__(self) -> None:
        if self.csv is not None:
            object.__setattr__(self, "csv", str(Path(self.csv).expanduser().absolute()))

    def load(self, vocabulary: Vocabulary | None = None) -> Dataset:
        """The data set: the bundled MP set, or the CSV read with ``load_csv``.

        Args:
            vocabulary: a model's element vocabulary, to refuse rows with other elements (CSV only).
        """
        if self.csv is None:
            return load_mp_formation_energy()
        return load_csv(self.csv, self.composition_column, self.property_column, vocabulary=vocabulary)

    def describe(self) -> str:
        """Words for messages: ``'the bundled MP set'`` or the CSV's path."""
        return "the bundled MP set" if self.csv is None else repr(self.csv)


def split_dataset(dataset: Dataset, split_seed: int, train_max_property: float | None = None) -> Split:
    """The paper's random split for the MP set (5,506 test); the same test share for other data.

    With ``train_max_property`` the split is by range instead (paper Fig. 1B): train on y <= it.
    """
    if train_max_property is not None:
        return dataset.range_split(train_max_property)
    n_test = (
        PAPER_N_TEST
        if len(dataset) > 2 * PAPER_N_TEST
        else max(1, round(len(dataset) * PAPER_N_TEST / PAPER_N_ROWS))
    )
    return dataset.random_split(split_seed, n_test)
