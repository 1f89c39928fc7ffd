"""CondGAN: the paper's auxiliary-regressor WGAN-GP (Sec. 3, eq. 2), written to be read.

Inputs ``x`` are min-max normalised vectors (x^b or x^bp) in [0, 1]; ``y`` is the min-max normalised
property, shape (B, 1). Training uses the fast step of ``models/fast`` (hand-derived critic gradient,
tested against ``critic_loss`` here); this file is the reference.

>>> gan = CondGAN(CondGANConfig(x_dim=147))
>>> gan.sample(torch.zeros(4, 1)).shape
torch.Size([4, 147])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from stoichgen.models.layers import linears, mlp


@dataclass(frozen=True)
class CondGANConfig:
    """CondGAN hyper-parameters.

    Layer sizes: the paper's text says generator 60 then 30 and critic the reverse; the authors' code
    (which produced the paper's numbers) has the generator 30 then 60 and the critic 60 then 30. The
    default follows the code.
    """

    x_dim: int
    z_dim: int = 10
    generator_hidden: tuple[int, ...] = (30, 60)
    critic_hidden: tuple[int, ...] = (60, 30)
    lambda_gp: float = 10.0  # lambda_1
    lambda_fake_property: float = 1.0  # lambda_2: generator's (y - P(G(z, y)))^2
    lambda_real_property: float = 1.0  # lambda_3: critic's (y - P(x))^2 on real data


class Critic(nn.Module):
    """One body with two heads: D(x), the Wasserstein score, and P(x), the property."""

    def __init__(self, x_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.body = nn.Sequential(mlp((x_dim, *hidden)), nn.ReLU())
        self.score = nn.Linear(hidden[-1], 1)
        self.property = nn.Linear(hidden[-1], 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """D(x) and P(x) for x (B, D); shapes (B, 1) each."""
        h = self.body(x)  # (B, H)
        return self.score(h), self.property(h)  # (B, 1), (B, 1)

    def linears(self) -> list[nn.Linear]:
        """The body's layers, first to last."""
        return linears(self.body)


class CondGAN(nn.Module):
    """Auxiliary-regressor GAN with the WGAN-GP loss (paper eq. 2).

    Follows the authors' code, which produced the paper's numbers: P is trained on real data only; the
    generator minimises -D(G(z, y)) + lambda_2 (y - P(G(z, y)))^2; 5 critic steps per generator step;
    Adam(lr 1e-4, betas (0, 0.9)); z ~ U(-1, 1)^10; a sigmoid output (normalised data lie in [0, 1]); and
    the interpolation weight eps ~ U[0, 1] (the paper's text says U[-1, 1]; WGAN-GP and the code use
    U[0, 1]).
    """

    def __init__(self, config: CondGANConfig) -> None:
        super().__init__()
        self.config = config
        self.generator = nn.Sequential(
            mlp((config.z_dim + 1, *config.generator_hidden, config.x_dim)), nn.Sigmoid()
        )
        self.critic = Critic(config.x_dim, config.critic_hidden)

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """z ~ U(-1, 1)^Z, shape (n, Z)."""
        return torch.rand(n, self.config.z_dim, generator=generator) * 2 - 1

    def sample(self, y: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """G(z, y) for y (B, 1); z ~ U(-1, 1)^Z unless given. Shape (B, D)."""
        if z is None:
            z = self.noise(len(y)).to(y.device)  # (B, Z)
        return self.generator(torch.cat([z, y], dim=-1))  # (B, D)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """P(x): the critic's property head, normalised units. Shape (B, 1)."""
        return self.critic(x)[1]

    def critic_loss(
        self, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor, eps: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """E[D(fake)] - E[D(real)] + lambda_1 GP + lambda_3 E[(y - P(real))^2], the textbook way.

        ``real`` (B, D) with property ``y`` (B, 1); ``fake`` = G(z, y) (B, D) drawn with the generator
        held fixed; ``eps`` (B, 1) the mixing weights of x_hat = eps real + (1 - eps) fake, whose
        gradient norm the penalty pulls to 1 (double back-propagation: ``create_graph=True``).
        """
        c = self.config
        score_real, prop_real = self.critic(real)  # (B, 1), (B, 1)
        score_fake, _ = self.critic(fake)  # (B, 1)
        mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)  # (B, D)
        score_mixed, _ = self.critic(mixed)  # (B, 1)
        (slope,) = torch.autograd.grad(score_mixed.sum(), mixed, create_graph=True)  # (B, D)
        terms = {
            "wasserstein": score_fake.mean() - score_real.mean(),
            "gp": ((slope.norm(dim=1) - 1) ** 2).mean(),
            "p_real_mse": ((prop_real - y) ** 2).mean(),
        }
        loss = terms["wasserstein"] + c.lambda_gp * terms["gp"] + c.lambda_real_property * terms["p_real_mse"]
        return loss, terms

    def generator_loss(
        self, y: torch.Tensor, z: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """-E[D(G(z, y))] + lambda_2 E[(y - P(G(z, y)))^2] for y (B, 1), z (B, Z); only the generator's
        weights should step."""
        score, prop = self.critic(self.sample(y, z))  # (B, 1), (B, 1)
        property_mse = F.mse_loss(prop, y)
        loss = -score.mean() + self.config.lambda_fake_property * property_mse
        return loss, {"g_adv": -score.mean(), "p_fake_mse": property_mse}


def textbook_update(
    gan: CondGAN,
    critic_optimizer: torch.optim.Optimizer,
    generator_optimizer: torch.optim.Optimizer,
    real: torch.Tensor,
    y: torch.Tensor,
    z: torch.Tensor,
    eps: torch.Tensor,
) -> None:
    """One generator step of the paper's update, the way one writes it from the paper: C critic steps on
    ``critic_loss``, then one on ``generator_loss``, each with its own optimiser.

    ``real`` (C, B, D) and ``y[:C]`` (C, B, 1) are the critic batches, ``y[C]`` the generator step's
    properties; ``z`` (C + 1, B, Z) and ``eps`` (C, B, 1) the noise. The fast step of ``models/fast`` is
    tested against this.
    """
    for k in range(real.shape[0]):
        with torch.no_grad():
            fake = gan.sample(y[k], z[k])  # (B, D)
        loss, _ = gan.critic_loss(real[k], fake, y[k], eps[k])
        critic_optimizer.zero_grad()
        loss.backward()
        critic_optimizer.step()
    loss, _ = gan.generator_loss(y[-1], z[-1])
    generator_optimizer.zero_grad()
    loss.backward()
    generator_optimizer.step()
