"""Sampling raw vectors from a trained generator (CondGAN or CondVAE) at target property values.

>>> sampler = Sampler.from_run("runs/cgan-bp")                   # doctest: +SKIP
>>> x = sampler.sample(-2.0, n=256, seed=0)                       # doctest: +SKIP
>>> x.shape                                                       # (256, 147): x^b then x^p
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from stoichgen.composition import Vocabulary
from stoichgen.data import MinMaxNormaliser
from stoichgen.models import CondGAN, CondVAE
from stoichgen.train import TrainError, load_checkpoint, model_from_checkpoint


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
        payload = load_checkpoint(path)
        model = model_from_checkpoint(payload)
        if not isinstance(model, CondGAN | CondVAE):
            raise TrainError(f"run {str(path)!r} holds a {payload['model_class']}, not a generative model")
        return cls(
            model,
            MinMaxNormaliser.from_state_dict(payload["normaliser"]),
            MinMaxNormaliser.from_state_dict(payload["property_normaliser"]),
            Vocabulary(tuple(payload["vocabulary"])),
            payload["representation"],
            payload,
        )

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

    def predict_property(self, x: np.ndarray) -> np.ndarray:
        """The CondGAN's own P(x) in data units, for vectors in data units. Shape (N,)."""
        if not isinstance(self.model, CondGAN):
            raise TypeError("only a CondGAN has a property head")
        with torch.no_grad():
            p = self.model.predict(torch.tensor(self.normaliser.transform(x), dtype=torch.float32)).numpy()
        return self.property_normaliser.inverse_transform(p)[:, 0]
