"""CondVAE: the paper's conditional variational autoencoder (Sec. 3, eq. 1).

>>> vae = CondVAE(CondVAEConfig(x_dim=20))
>>> vae.sample(torch.zeros(3, 1)).shape
torch.Size([3, 20])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from stoichgen.models.layers import mlp


@dataclass(frozen=True)
class CondVAEConfig:
    """CondVAE hyper-parameters: encoder q(z | x, y) and decoder p(x | z, y), prior N(0, I).

    Reconstruction likelihood: the min-max normalised inputs lie in [0, 1], so each column is modelled
    as a Bernoulli mean (binary cross-entropy with a sigmoid decoder, summed over columns) -- the usual
    choice for [0, 1] data and the one that keeps decoded fractions in range.
    """

    x_dim: int
    z_dim: int = 10
    encoder_hidden: tuple[int, ...] = (60, 30)
    decoder_hidden: tuple[int, ...] = (30, 60)
    beta: float = 1.0  # weight of the KL term; 1 is the ELBO of eq. (1)


class CondVAE(nn.Module):
    def __init__(self, config: CondVAEConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = nn.Sequential(mlp((config.x_dim + 1, *config.encoder_hidden)), nn.ReLU())
        self.to_mean = nn.Linear(config.encoder_hidden[-1], config.z_dim)
        self.to_log_var = nn.Linear(config.encoder_hidden[-1], config.z_dim)
        self.decoder = mlp((config.z_dim + 1, *config.decoder_hidden, config.x_dim))

    def encode(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(torch.cat([x, y], dim=1))  # (B, H)
        return self.to_mean(h), self.to_log_var(h)  # (B, Z), (B, Z)

    def decode_logits(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.decoder(torch.cat([z, y], dim=1))  # (B, D)

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """z ~ N(0, I), the prior; shape (n, Z)."""
        return torch.randn(n, self.config.z_dim, generator=generator)

    def sample(self, y: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """Decoded means for y (B, 1); z from the prior unless given. Shape (B, D)."""
        if z is None:
            z = self.noise(len(y)).to(y.device)  # (B, Z)
        return torch.sigmoid(self.decode_logits(z, y))  # (B, D)

    def loss(
        self, x: torch.Tensor, y: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """-ELBO per sample (eq. 1); ``noise`` ~ N(0, I) of shape (B, Z) for the reparameterisation."""
        mean, log_var = self.encode(x, y)  # (B, Z), (B, Z)
        z = mean + torch.exp(0.5 * log_var) * noise  # (B, Z)
        logits = self.decode_logits(z, y)  # (B, D)
        reconstruction = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1).mean()
        kl = 0.5 * (mean.pow(2) + log_var.exp() - 1 - log_var).sum(1).mean()
        loss = reconstruction + self.config.beta * kl
        return loss, {"reconstruction": reconstruction, "kl": kl}
