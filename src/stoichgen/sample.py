"""Using trained runs: sampling raw vectors from a generator (CondGAN or CondVAE) at target property
values, and predicting the property with a DNN or a CondGAN's P(.) head.

>>> sampler = Sampler.from_run("runs/cgan-bp")                   # doctest: +SKIP
>>> x = sampler.sample(-2.0, n=256, seed=0)                       # doctest: +SKIP
>>> x.shape                                                       # (256, 147): x^b then x^p
>>> Predictor.from_run("runs/dnn-bp").predict_formulas(["NaCl"])  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from stoichgen.composition import Vocabulary, formula_fractions
from stoichgen.data import MinMaxNormaliser, descriptor_matrix
from stoichgen.models import DNN, CondGAN, CondVAE
from stoichgen.train import TrainError, load_checkpoint, model_from_checkpoint


def _load_run(path: Path | str, kinds: tuple[type[nn.Module], ...], refusal: str) -> tuple[dict, tuple]:
    """A run's checkpoint and (model, normaliser, property normaliser, vocabulary, representation);
    ``TrainError`` ("run ... holds a X, <refusal>") if its model is not one of ``kinds``."""
    payload = load_checkpoint(path)
    model = model_from_checkpoint(payload)
    if not isinstance(model, kinds):
        raise TrainError(f"run {str(path)!r} holds a {payload['model_class']}, {refusal}")
    return payload, (
        model,
        MinMaxNormaliser.from_state_dict(payload["normaliser"]),
        MinMaxNormaliser.from_state_dict(payload["property_normaliser"]),
        Vocabulary(tuple(payload["vocabulary"])),
        payload["representation"],
    )


@dataclass(frozen=True)
class Predictor:
    """A trained property predictor: a DNN, or a CondGAN's P(.) head."""

    model: DNN | CondGAN
    normaliser: MinMaxNormaliser
    property_normaliser: MinMaxNormaliser
    vocabulary: Vocabulary
    representation: str

    @classmethod
    def from_run(cls, path: Path | str) -> Predictor:
        _, fields = _load_run(path, (DNN, CondGAN), "which predicts no property")
        return cls(*fields)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Property in data units for vectors in data units of the model's representation. Shape (N,)."""
        with torch.no_grad():
            p = self.model.predict(torch.tensor(self.normaliser.transform(x), dtype=torch.float32))  # (N, 1)
        return self.property_normaliser.inverse_transform(p.numpy())[:, 0]

    def predict_fractions(self, x_b: np.ndarray) -> np.ndarray:
        """Property of compositions given as x^b fractions (N, V); x^p is computed from them."""
        x_b = np.asarray(x_b, dtype=float)
        if self.representation == "bp":
            return self.predict(np.hstack([x_b, x_b @ descriptor_matrix(self.vocabulary)]))
        return self.predict(x_b)

    def predict_formulas(self, formulas: Sequence[str]) -> np.ndarray:
        return self.predict_fractions(formula_fractions(formulas, self.vocabulary))


@dataclass(frozen=True)
class Sampler:
    """A trained generative model with what is needed to turn its outputs into compositions."""

    model: CondGAN | CondVAE
    normaliser: MinMaxNormaliser
    property_normaliser: MinMaxNormaliser
    vocabulary: Vocabulary
    representation: str
    payload: dict

    @classmethod
    def from_run(cls, path: Path | str) -> Sampler:
        payload, fields = _load_run(path, (CondGAN, CondVAE), "not a generative model")
        return cls(*fields, payload)

    @property
    def property_range(self) -> tuple[float, float]:
        """The training split's property range (outside it, generation is extrapolation)."""
        return self.property_normaliser.minimum[0], self.property_normaliser.maximum[0]

    def sample(self, targets: float | np.ndarray, n: int = 256, seed: int = 0) -> np.ndarray:
        """``n`` vectors per target, in data units (x^b fractions first). Shape (T * n, D), target-major."""
        if n <= 0:
            raise ValueError(f"n must be positive, got {n}")
        targets = np.atleast_1d(np.asarray(targets, dtype=float))
        y = self.property_normaliser.transform(np.repeat(targets, n)[:, None])  # (T * n, 1)
        rng = torch.Generator().manual_seed(seed)
        y_tensor = torch.tensor(y, dtype=torch.float32)
        z_dim = self.model.config.z_dim
        with torch.no_grad():
            if isinstance(self.model, CondGAN):
                z = torch.rand(len(y), z_dim, generator=rng) * 2 - 1  # (T * n, Z) ~ U(-1, 1)
            else:
                z = torch.randn(len(y), z_dim, generator=rng)  # (T * n, Z) ~ N(0, I)
            x = self.model.generate(y_tensor, z).numpy()  # (T * n, D), normalised
        return self.normaliser.inverse_transform(x)

    @property
    def predictor(self) -> Predictor:
        """The CondGAN's own P(.) head as a ``Predictor``."""
        if not isinstance(self.model, CondGAN):
            raise TypeError("only a CondGAN has a property head")
        return Predictor(
            self.model, self.normaliser, self.property_normaliser, self.vocabulary, self.representation
        )

    def predict_property(self, x: np.ndarray) -> np.ndarray:
        """The CondGAN's own P(x) in data units, for vectors in data units. Shape (N,)."""
        return self.predictor.predict(x)
