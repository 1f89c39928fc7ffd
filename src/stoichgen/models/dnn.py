"""DNN: the Table 4 baseline, the critic's body plus the property head, trained on MSE alone.

>>> DNN(DNNConfig(x_dim=20)).predict(torch.zeros(3, 20)).shape
torch.Size([3, 1])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from stoichgen.models.layers import mlp


@dataclass(frozen=True)
class DNNConfig:
    x_dim: int
    hidden: tuple[int, ...] = (60, 30)


class DNN(nn.Module):
    def __init__(self, config: DNNConfig) -> None:
        super().__init__()
        self.config = config
        self.body = nn.Sequential(mlp((config.x_dim, *config.hidden)), nn.ReLU())
        self.property = nn.Linear(config.hidden[-1], 1)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.property(self.body(x))  # (B, 1)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        mse = F.mse_loss(self.predict(x), y)
        return mse, {"mse": mse}
