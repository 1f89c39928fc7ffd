"""Surrogate: an ensemble of K property predictors (the DNN's shape), giving a mean and a spread.

Each member is an independently initialised MLP trained on its own bootstrap resample of the training
split (``train.py``); the members' disagreement is the spread, scaled by ``spread_scale`` (fitted
after training on rows no member trained on, so that about 68 % of errors lie within one spread).

>>> surrogate = SurrogateEnsemble(SurrogateConfig(x_dim=20, members=3))
>>> surrogate.members_predict(torch.zeros(4, 20)).shape
torch.Size([3, 4, 1])
>>> mean, spread = surrogate.predict_with_spread(torch.zeros(4, 20))
>>> mean.shape, spread.shape
(torch.Size([4, 1]), torch.Size([4, 1]))
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from stoichgen.models.layers import mlp


@dataclass(frozen=True)
class SurrogateConfig:
    x_dim: int
    hidden: tuple[int, ...] = (128, 64)
    members: int = 5


class SurrogateEnsemble(nn.Module):
    def __init__(self, config: SurrogateConfig) -> None:
        super().__init__()
        self.config = config
        self.members = nn.ModuleList(mlp((config.x_dim, *config.hidden, 1)) for _ in range(config.members))
        # the members' standard deviation times this is the reported spread (1 until calibrated)
        self.register_buffer("spread_scale", torch.ones(()))

    def members_predict(self, x: torch.Tensor) -> torch.Tensor:
        """Every member's prediction for x (B, D), or for per-member batches x (K, B, D). Shape (K, B, 1)."""
        if x.dim() == 2:
            return torch.stack([member(x) for member in self.members])  # (K, B, 1)
        return torch.stack([member(x[k]) for k, member in enumerate(self.members)])  # (K, B, 1)

    def predict_with_spread(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Ensemble mean and calibrated spread (standard deviation over members), (B, 1) each."""
        each = self.members_predict(x)  # (K, B, 1)
        return each.mean(0), each.std(0, correction=0) * self.spread_scale  # (B, 1), (B, 1)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The ensemble mean, normalised units. Shape (B, 1)."""
        return self.members_predict(x).mean(0)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Sum over members of each member's MSE on its own batch: x (K, B, D), y (K, B, 1)."""
        per_member = torch.stack([F.mse_loss(p, t) for p, t in zip(self.members_predict(x), y, strict=True)])
        return per_member.sum(), {"mse": per_member.mean()}
