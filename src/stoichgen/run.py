"""The run record: what a trained run's ``checkpoint.pt`` holds, typed, saved atomically and validated.

A run directory holds ``checkpoint.pt`` (this record; loads with ``torch.load(..., weights_only=True)``,
so no code runs on load), ``config.json`` and ``losses.jsonl``. Loading validates everything a model
needs (kind, config, weights against the config, vocabulary against the input width, normalisers) and
says what is wrong ("not a valid stoichgen run: ...") instead of failing later with a KeyError.

>>> record = RunRecord.load(bundled_run_dir("cgan-bp"))
>>> record.kind.name, record.representation, len(record.vocabulary), record.split
('cgan', 'bp', 89, {'kind': 'random', 'seed': 0, 'n_test': 5506})
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from stoichgen.chem.composition import Vocabulary
from stoichgen.data import Dataset, DataSource, MinMaxNormaliser, Split, element_descriptors, split_dataset
from stoichgen.errors import DataError, RunError, StoichgenError
from stoichgen.io import atomic_write_bytes, atomic_write_text
from stoichgen.models import MODEL_KINDS, ModelKind, kind_of, kind_of_class

__all__ = [
    "CHECKPOINT",
    "FORMAT_VERSION",
    "Progress",
    "RunRecord",
    "atomic_write_bytes",
    "atomic_write_text",
    "bundled_run_dir",
    "run_split",
]

FORMAT_VERSION = 1
CHECKPOINT = "checkpoint.pt"
REPRESENTATIONS = ("b", "bp")
_PAYLOAD_KEYS = (
    "format_version", "model_class", "model_config", "state_dict", "normaliser", "property_normaliser",
    "property_name", "vocabulary", "representation", "split", "data", "train", "progress", "optimizer", "rng",
)  # fmt: skip


# --- atomic writes ---------------------------------------------------------------------------------------

def bundled_run_dir(name: str) -> Path:
    """A run shipped inside the package (``resources/models/<name>``)."""
    return Path(str(resources.files("stoichgen") / "resources" / "models" / name))


# --- the record ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    step: int
    elapsed_s: float


@dataclass(frozen=True, eq=False)
class RunRecord:
    """Everything a checkpoint holds. ``train`` is the training options as stored (``options.stored_options``
    reads them back); ``optimizer`` and ``rng`` are what resuming needs; ``split`` describes the split
    (``run_split`` recovers it from the data)."""

    kind: ModelKind
    model_config: Any
    state_dict: Mapping[str, torch.Tensor]
    normaliser: MinMaxNormaliser
    property_normaliser: MinMaxNormaliser
    property_name: str
    vocabulary: Vocabulary
    representation: str
    split: dict
    data: DataSource
    train: dict
    progress: Progress
    optimizer: dict = field(default_factory=dict)
    rng: torch.Tensor | None = None
    source: str = ""  # where it was loaded from, for messages

    @classmethod
    def from_model(cls, model: nn.Module, **fields: Any) -> RunRecord:
        """A record of a model's current weights (on the CPU); other fields as in the class."""
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        return cls(kind=kind_of(model), model_config=model.config, state_dict=state, **fields)

    @property
    def x_dim(self) -> int:
        return int(self.model_config.x_dim)

    def model(self) -> nn.Module:
        """The model with the record's weights, in eval mode."""
        model = self.kind.module(self.model_config)
        model.load_state_dict(dict(self.state_dict), strict=True)
        return model.eval()

    def property_range(self) -> tuple[float, float]:
        """The training split's property range (outside it, generation is extrapolation)."""
        return self.property_normaliser.minimum[0], self.property_normaliser.maximum[0]

    # -- on disk -----------------------------------------------------------------------------------------

    def to_payload(self) -> dict:
        """The checkpoint's dict: plain types and tensors only, so it loads with ``weights_only=True``."""
        return {
            "format_version": FORMAT_VERSION,
            "model_class": self.kind.label,
            "model_config": dataclasses.asdict(self.model_config),
            "state_dict": dict(self.state_dict),
            "normaliser": self.normaliser.state_dict(),
            "property_normaliser": self.property_normaliser.state_dict(),
            "property_name": self.property_name,
            "vocabulary": list(self.vocabulary.symbols),
            "representation": self.representation,
            "split": dict(self.split),
            "data": dataclasses.asdict(self.data),
            "train": dict(self.train),
            "progress": {"step": self.progress.step, "elapsed_s": self.progress.elapsed_s},
            "optimizer": self.optimizer,
            "rng": self.rng,
        }

    def save(self, run_dir: Path | str) -> Path:
        """Write ``checkpoint.pt`` into ``run_dir`` atomically; returns its path."""
        path = Path(run_dir) / CHECKPOINT
        payload = self.to_payload()
        atomic_write_bytes(path, lambda handle: torch.save(payload, handle))
        return path

    @classmethod
    def load(cls, path: Path | str) -> RunRecord:
        """Read and validate a run directory's (or a file's) checkpoint; ``RunError`` saying what is wrong."""
        path = Path(path)
        if path.is_dir():
            path = path / CHECKPOINT
        if not path.is_file():
            raise RunError(
                f"no checkpoint at {str(path)!r} (not a run directory, or training never saved one)"
            )
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # torch raises many types for a damaged file, with texts such as "105"
            raise RunError(
                f"checkpoint {str(path)!r} is corrupt or not a stoichgen checkpoint (torch cannot read it); "
                "train the run again, or give another run directory"
            ) from None
        return cls.from_payload(payload, str(path))

    @classmethod
    def from_payload(cls, payload: object, source: str = "checkpoint") -> RunRecord:
        """Validate a checkpoint's dict and type it."""

        def invalid(reason: str) -> RunError:
            return RunError(f"not a valid stoichgen run: {source}: {reason}")

        if not isinstance(payload, dict) or "format_version" not in payload:
            raise invalid("not a stoichgen checkpoint (no format version)")
        if payload["format_version"] != FORMAT_VERSION:
            raise invalid(
                f"format version {payload['format_version']!r}; this stoichgen reads version {FORMAT_VERSION}"
            )
        missing = [k for k in _PAYLOAD_KEYS if k not in payload]
        if missing:
            raise invalid(f"missing {', '.join(missing)}")
        try:
            kind = kind_of_class(payload["model_class"])
        except (KeyError, TypeError):
            known = ", ".join(k.label for k in MODEL_KINDS.values())
            raise invalid(f"unknown model class {payload['model_class']!r}; known: {known}") from None
        config = _config(kind, payload["model_config"], invalid)
        try:
            vocabulary = Vocabulary(tuple(payload["vocabulary"]))
        except (StoichgenError, TypeError) as err:
            raise invalid(f"vocabulary: {err}") from None
        representation = payload["representation"]
        if representation not in REPRESENTATIONS:
            raise invalid(f"representation {representation!r}; expected 'b' or 'bp'")
        width = len(vocabulary) + (element_descriptors().shape[1] if representation == "bp" else 0)
        if config.x_dim != width:
            raise invalid(
                f"the model takes {config.x_dim} input columns, but {len(vocabulary)} elements in "
                f"x^{representation} make {width}"
            )
        normaliser = _normaliser(payload["normaliser"], width, "normaliser", invalid)
        property_normaliser = _normaliser(payload["property_normaliser"], 1, "property normaliser", invalid)
        state = payload["state_dict"]
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise invalid("state_dict is not a mapping of names to tensors")
        data = payload["data"]
        try:
            source_of_data = DataSource(**data)
        except TypeError:
            raise invalid(f"data source {data!r}") from None
        split = payload["split"]
        if not _valid_split(split):
            raise invalid(f"split {split!r}")
        progress = payload["progress"]
        try:
            progress_record = Progress(int(progress["step"]), float(progress["elapsed_s"]))
        except (KeyError, TypeError, ValueError):
            raise invalid(f"progress {progress!r}") from None
        if not isinstance(payload["train"], dict) or payload["train"].get("model") not in (kind.name, None):
            raise invalid(f"training options {payload['train']!r} do not describe a {kind.label}")
        record = cls(
            kind, config, state, normaliser, property_normaliser, str(payload["property_name"]), vocabulary,
            representation, dict(split), source_of_data, dict(payload["train"]), progress_record,
            payload["optimizer"], payload["rng"], source,
        )  # fmt: skip
        try:
            record.model()
        except RuntimeError as err:
            first = str(err).strip().splitlines()
            raise invalid(f"weights do not fit a {kind.label} of its config: {' '.join(first[:4])}") from None
        return record

    # -- data --------------------------------------------------------------------------------------------

    def load_data(self) -> Dataset:
        """The run's data set, reloaded from its source and checked against the run's vocabulary."""
        try:
            dataset = self.data.load()
        except DataError as err:
            raise RunError(f"cannot reload the data of run {self.source}: {err}") from None
        if dataset.vocabulary.symbols != self.vocabulary.symbols:
            raise RunError(
                f"the data of run {self.source} ({self.data.describe()}) has changed since training: "
                f"{len(dataset.vocabulary)} elements, the run has {len(self.vocabulary)}"
            )
        return dataset

    def load_split(self, dataset: Dataset | None = None) -> Split:
        """The split the run was trained on (its data reloaded unless given)."""
        return run_split(self.load_data() if dataset is None else dataset, self.split)


def _config(kind: ModelKind, stored: object, invalid: Callable[[str], RunError]) -> Any:
    if not isinstance(stored, dict):
        raise invalid(f"model config {stored!r} is not a mapping")
    names = {f.name for f in dataclasses.fields(kind.config)}
    unknown = sorted(set(stored) - names)
    if unknown:
        raise invalid(f"model config has unknown fields {unknown} for a {kind.label}")
    try:
        # JSON-like storage turns tuples into lists
        return kind.config(**{k: tuple(v) if isinstance(v, list) else v for k, v in stored.items()})
    except TypeError as err:
        raise invalid(f"model config: {err}") from None


def _normaliser(state: object, width: int, name: str, invalid: Callable[[str], RunError]) -> MinMaxNormaliser:
    try:
        normaliser = MinMaxNormaliser.from_state_dict(state)  # type: ignore[arg-type]
    except (DataError, TypeError, ValueError, AttributeError) as err:
        raise invalid(f"{name}: {err}") from None
    low, high = np.asarray(normaliser.minimum), np.asarray(normaliser.maximum)
    if len(low) != width:
        raise invalid(f"{name} has {len(low)} columns, the model {width}")
    if not (np.isfinite(low).all() and np.isfinite(high).all() and (low <= high).all()):
        raise invalid(f"{name} holds non-finite values or a minimum above its maximum")
    return normaliser


def _valid_split(split: object) -> bool:
    if not isinstance(split, dict):
        return False
    if split.get("kind") == "range":
        return isinstance(split.get("y_max"), int | float) and math.isfinite(split["y_max"])
    return split.get("kind") == "random" and isinstance(split.get("seed"), int)


def run_split(dataset: Dataset, info: dict) -> Split:
    """The split a run was trained on, from its record's description."""
    if info.get("kind") == "range":
        return dataset.range_split(info["y_max"])
    if "n_test" in info:
        return dataset.random_split(info["seed"], info["n_test"])
    return split_dataset(dataset, info["seed"])
