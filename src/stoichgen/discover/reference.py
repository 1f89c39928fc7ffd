"""A run's training split reduced to what generation needs (sparse x^b, property, reduced formulas),
cached as ``reference.npz`` in the run directory.

Loading the data set takes seconds, so the split is cached in compact form (and a key of the run's
vocabulary, data source and split): written on first use (atomically) or by ``write_reference(run_dir)``
after training, and rebuilt when the key no longer matches. Delete it to force a rebuild (e.g. after
editing the training CSV in place).

>>> from stoichgen.run import bundled_run_dir
>>> reference = load_reference(bundled_run_dir("cgan-bp"), RunRecord.load(bundled_run_dir("cgan-bp")))
>>> len(reference), len(reference.formula_set)
(44037, 44037)
"""

from __future__ import annotations

import dataclasses
import json
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import sparse

from stoichgen.data import Dataset
from stoichgen.errors import GenerateError, GenerateWarning
from stoichgen.io import atomic_write_bytes
from stoichgen.run import RunRecord

REFERENCE = "reference.npz"
REFERENCE_VERSION = 1


def _reference_key(record: RunRecord) -> str:
    """What identifies a run's training split: vocabulary, data source and split."""
    return json.dumps(
        {
            "version": REFERENCE_VERSION,
            "vocabulary": list(record.vocabulary.symbols),
            "data": dataclasses.asdict(record.data),
            "split": record.split,
        },
        sort_keys=True,
    )


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
        atomic_write_bytes(path, lambda handle: np.savez_compressed(handle, **arrays))

    @classmethod
    def load(cls, path: Path) -> Reference:
        with np.load(path, allow_pickle=False) as npz:
            if int(npz["version"][0]) != REFERENCE_VERSION:
                raise GenerateError(f"reference version {int(npz['version'][0])}")
            shape = tuple(int(s) for s in npz["shape"])
            x_b = sparse.csr_matrix((npz["data"], npz["indices"], npz["indptr"]), shape=shape)
            text = npz["formulas"].tobytes().decode()
            formulas = tuple(text.split("\n")) if text else ()
            reference = cls(x_b, npz["y"], formulas, npz["key"].tobytes().decode())
        if not (len(reference.formulas) == len(reference.y) == shape[0]):
            raise GenerateError("inconsistent reference arrays")
        return reference


def write_reference(run_dir: Path | str, train_split: Dataset | None = None) -> Path:
    """Write ``reference.npz`` (the training split for nearest compositions and novelty) into a run.

    ``train_split``: the run's training split if already in memory (e.g. at the end of training);
    otherwise it is reloaded from the checkpoint's data source. Returns the file's path.
    """
    run_dir = Path(run_dir)
    record = RunRecord.load(run_dir)
    if train_split is None:
        train_split = record.load_split().train
    elif train_split.vocabulary.symbols != record.vocabulary.symbols:
        raise GenerateError("train_split has another element vocabulary than the run's checkpoint")
    path = (run_dir if run_dir.is_dir() else run_dir.parent) / REFERENCE
    Reference.from_dataset(train_split, _reference_key(record)).save(path)
    return path


def load_reference(run_dir: Path | None, record: RunRecord) -> Reference:
    """The run's cached reference if it matches the checkpoint; else rebuilt (and cached if possible)."""
    key = _reference_key(record)
    path = None if run_dir is None else run_dir / REFERENCE
    if path is not None and path.is_file():
        try:
            reference = Reference.load(path)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, UnicodeDecodeError) as err:
            warnings.warn(f"{path} is unreadable ({err}); rebuilding it", GenerateWarning, stacklevel=3)
        else:
            if reference.key == key:
                return reference
    reference = Reference.from_dataset(record.load_split().train, key)
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
