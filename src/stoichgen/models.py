"""The paper's models (Sec. 3, 5.2): CondVAE, CondGAN (auxiliary-regressor WGAN-GP) and the DNN baseline.

Each model is a small ``nn.Module`` built from one frozen dataclass config. Inputs ``x`` are min-max
normalised vectors (x^b or x^bp) in [0, 1]; ``y`` is the min-max normalised property, shape (B, 1).

>>> gan = CondGAN(CondGANConfig(x_dim=147))
>>> gan.generate(torch.zeros(4, 1)).shape
torch.Size([4, 147])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def mlp(sizes: tuple[int, ...]) -> nn.Sequential:
    """Fully connected layers with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


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
        return self.heads(self.body(x))

    def heads(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """D and P from the last hidden layer, as one product: tiny matrix products cost their call."""
        weight = torch.cat([self.score.weight, self.property.weight])  # (2, H)
        bias = torch.cat([self.score.bias, self.property.bias])  # (2,)
        score, prop = F.linear(h, weight, bias).split(1, dim=1)  # (B, 1), (B, 1)
        return score, prop

    def linears(self) -> list[nn.Linear]:
        return [m for m in self.body.modules() if isinstance(m, nn.Linear)]

    def heads_from_first_layer(
        self, pre: torch.Tensor, n_penalty: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """D and P from the first layer's pre-activation ``pre`` (N, H_1), and dD/d(pre) for its last
        ``n_penalty`` rows (the ones the gradient penalty needs).

        For a ReLU network dD/dh = diag(m_1) W_2^T ... diag(m_L) w_D with m_l the ReLU masks, whose own
        derivative is zero almost everywhere; so this closed form, differentiable in the weights, equals
        double back-propagation for the gradient penalty while needing only first-order autograd.
        """
        rest = self.linears()[1:]
        h, masks = torch.relu(pre), [pre[-n_penalty:] > 0]  # (N, H_1), (n, H_1)
        for linear in rest:
            z = linear(h)  # (N, H_l)
            masks.append(z[-n_penalty:] > 0)
            h = torch.relu(z)
        grad = self.score.weight * masks[-1]  # (n, H_L)
        for linear, mask in zip(reversed(rest), reversed(masks[:-1]), strict=True):
            grad = (grad @ linear.weight) * mask  # (n, H_{l-1})
        return (*self.heads(h), grad)  # (N, 1), (N, 1), (n, H_1)


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

    def generate(self, y: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        if z is None:
            z = torch.rand(y.shape[0], self.config.z_dim, device=y.device) * 2 - 1  # (B, Z) ~ U(-1, 1)
        return self.generator(torch.cat([z, y], dim=1))  # (B, D)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """P(x): the critic's property head, normalised units. Shape (B, 1)."""
        return self.critic(x)[1]

    def critic_loss(
        self, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor, eps: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """E[D(fake)] - E[D(real)] + lambda_1 GP + lambda_3 E[(y - P(real))^2], for ``fake`` = G(z, y) drawn
        with the generator held fixed (``generate`` under ``no_grad``) and ``y`` the real rows' property.

        Computed in a reassociated but exactly equivalent form, since the first layer dominates the cost:
        the first-layer pre-activation of x_hat = eps x + (1 - eps) x_tilde is the same mix of those of x
        and x_tilde (the layer is affine), and ||dD/dx||^2 = g^T (W_1 W_1^T) g with g = dD/d(pre-activation).
        ``tests/test_models.py`` checks loss and gradients against plain double back-propagation.
        """
        c = self.config
        b = real.shape[0]
        first = self.critic.linears()[0]
        # real and fake (and their mix) share one matmul per layer: fewer, larger kernels
        pre_real, pre_fake = first(torch.cat([real, fake])).chunk(2)  # (B, H_1) each
        pre_mixed = eps * pre_real + (1 - eps) * pre_fake  # (B, H_1)
        pre = torch.cat([pre_real, pre_fake, pre_mixed])  # (3B, H_1)
        score, prop, grad = self.critic.heads_from_first_layer(pre, n_penalty=b)  # grad: (B, H_1)
        score_real, score_fake, _ = score.chunk(3)  # (B, 1) each
        property_real = prop[:b]  # (B, 1)
        gram = first.weight @ first.weight.T  # (H_1, H_1)
        grad_norm = (((grad @ gram) * grad).sum(dim=1) + 1e-12).sqrt()  # (B,)
        penalty = ((grad_norm - 1) ** 2).mean()
        wasserstein = score_fake.mean() - score_real.mean()
        property_mse = F.mse_loss(property_real, y)
        loss = wasserstein + c.lambda_gp * penalty + c.lambda_real_property * property_mse
        return loss, {"wasserstein": wasserstein, "gp": penalty, "p_real_mse": property_mse}

    def generator_loss(
        self, y: torch.Tensor, z: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """-E[D(G(z, y))] + lambda_2 E[(y - P(G(z, y)))^2]; only the generator's weights should step."""
        fake = self.generate(y, z)  # (B, D)
        score, prop = self.critic(fake)  # (B, 1), (B, 1)
        property_mse = F.mse_loss(prop, y)
        loss = -score.mean() + self.config.lambda_fake_property * property_mse
        return loss, {"g_adv": -score.mean(), "p_fake_mse": property_mse}


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

    def generate(self, y: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        if z is None:
            z = torch.randn(y.shape[0], self.config.z_dim, device=y.device)  # (B, Z) ~ prior
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


@dataclass(frozen=True)
class DNNConfig:
    """The Table 4 baseline: the critic's body plus the property head, trained on MSE alone."""

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


MODEL_CLASSES: dict[str, tuple[type[nn.Module], type]] = {
    "CondGAN": (CondGAN, CondGANConfig),
    "CondVAE": (CondVAE, CondVAEConfig),
    "DNN": (DNN, DNNConfig),
}
