"""CondVAE: the paper's conditional variational autoencoder (Sec. 3, eq. 1).

Encoder q(z | x, y) and decoder p(x | z, y) both take y concatenated to their input; the prior is
p(z | y) = N(0, I), as in the paper. The likelihood p(x | z, y) is one of ``LIKELIHOODS`` (the paper
does not say which it used; docs/reproduction/cvae.md compares them):

- ``"bernoulli"``: each min-max normalised column is a Bernoulli mean (sigmoid decoder, binary
  cross-entropy summed over columns). The checkpoints trained before the option existed use it.
- ``"gaussian"``: a Gaussian around the decoded mean with one learned standard deviation shared by
  every column (a calibrated decoder: the reconstruction weighs what the data's spread says).
- ``"softmax"``: the first ``n_elements`` columns (x^b) are one categorical distribution over the
  elements, so decoded fractions sum to one by construction; the loss is the cross-entropy with the
  composition's own fractions, times ``n_elements``; any further columns (x^p) are Bernoulli as above.

>>> vae = CondVAE(CondVAEConfig(x_dim=20))
>>> vae.sample(torch.zeros(3, 1)).shape
torch.Size([3, 20])
>>> softmax = CondVAE(CondVAEConfig(x_dim=20, likelihood="softmax", n_elements=15))
>>> with torch.no_grad():
...     round(float(softmax.sample(torch.zeros(2, 1))[:, :15].sum(1).mean()), 4)
1.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from stoichgen.errors import InputError
from stoichgen.models.layers import mlp

LIKELIHOODS = ("bernoulli", "gaussian", "softmax")
_MIN_LOG_SIGMA = math.log(1e-3)  # the Gaussian's shared scale stops here (a column constant in the data)


@dataclass(frozen=True)
class CondVAEConfig:
    """CondVAE hyper-parameters. ``beta``: weight of the KL term (1 is the ELBO of eq. 1);
    ``free_bits``: nats per latent unit below which the KL is not penalised (Kingma et al. 2016), 0 off;
    ``likelihood`` and ``n_elements``: see the module docstring (``n_elements`` 0 means every column)."""

    x_dim: int
    z_dim: int = 10
    encoder_hidden: tuple[int, ...] = (60, 30)
    decoder_hidden: tuple[int, ...] = (30, 60)
    beta: float = 1.0
    likelihood: str = "bernoulli"
    n_elements: int = 0
    free_bits: float = 0.0
    adversary: float = 0.0  # weight of the z-y independence adversary (Klys et al. 2018); 0 off
    conditional_prior: bool = False  # p(z | y) = N(mu(y), sigma(y)) learned, eq. 1's general form
    property_weight: float = 0.0  # weight of (y - P(x~))^2 on prior samples, as CondGAN's lambda_2; 0 off

    def __post_init__(self) -> None:
        if self.likelihood not in LIKELIHOODS:
            raise InputError(f"likelihood {self.likelihood!r}: expected one of {', '.join(LIKELIHOODS)}")
        if not 0 <= self.n_elements <= self.x_dim:
            raise InputError(f"n_elements must be between 0 and x_dim {self.x_dim}, got {self.n_elements}")
        for name in ("beta", "free_bits", "adversary", "property_weight"):
            if not getattr(self, name) >= 0:
                raise InputError(f"{name} must be >= 0, got {getattr(self, name)!r}")

    @property
    def n_categorical(self) -> int:
        """Columns of the softmax block (0 unless ``likelihood == "softmax"``)."""
        if self.likelihood != "softmax":
            return 0
        return self.n_elements or self.x_dim


class CondVAE(nn.Module):
    def __init__(self, config: CondVAEConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = nn.Sequential(mlp((config.x_dim + 1, *config.encoder_hidden)), nn.ReLU())
        self.to_mean = nn.Linear(config.encoder_hidden[-1], config.z_dim)
        self.to_log_var = nn.Linear(config.encoder_hidden[-1], config.z_dim)
        self.decoder = mlp((config.z_dim + 1, *config.decoder_hidden, config.x_dim))
        if config.likelihood == "gaussian":  # only then: older checkpoints load strictly
            self.log_sigma = nn.Parameter(torch.full((1,), math.log(0.1)))
        if config.conditional_prior:
            self.prior = mlp((1, config.encoder_hidden[-1], 2 * config.z_dim))
        if config.property_weight > 0:  # P(x^b): learns the property of real rows, judges the samples
            self.predictor = mlp((config.n_elements or config.x_dim, *config.encoder_hidden, 1))
        if config.adversary > 0:  # predicts y from z; the encoder is trained to defeat it
            self.adversary = mlp((config.z_dim, *config.encoder_hidden, 1))

    def encode(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(torch.cat([x, y], dim=1))  # (B, H)
        return self.to_mean(h), self.to_log_var(h)  # (B, Z), (B, Z)

    def decode_logits(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The decoder's raw output: logits (Bernoulli, softmax) or the mean (Gaussian). Shape (B, D)."""
        return self.decoder(torch.cat([z, y], dim=1))  # (B, D)

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Standard normal noise of shape (n, Z): z itself, or what ``prior_at`` maps to z ~ p(z | y)."""
        return torch.randn(n, self.config.z_dim, generator=generator)

    def prior_of(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of p(z | y), shapes (B, Z): N(0, I) unless the prior is conditional."""
        if not self.config.conditional_prior:
            zeros = y.new_zeros(len(y), self.config.z_dim)  # (B, Z)
            return zeros, zeros
        mean, log_var = self.prior(y).chunk(2, dim=1)  # (B, Z), (B, Z)
        return mean, log_var

    def prior_at(self, y: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """z ~ p(z | y) from standard normal ``noise`` (B, Z). Shape (B, Z)."""
        if not self.config.conditional_prior:
            return noise
        mean, log_var = self.prior_of(y)
        return mean + torch.exp(0.5 * log_var) * noise

    def mean_of(self, out: torch.Tensor) -> torch.Tensor:
        """The likelihood's mean, in the data's normalised units, from the decoder's output (B, D)."""
        if self.config.likelihood == "gaussian":
            return out.clamp(0.0, 1.0)  # the data lie in [0, 1]
        k = self.config.n_categorical
        return torch.cat([torch.softmax(out[:, :k], dim=1), torch.sigmoid(out[:, k:])], dim=1)  # (B, D)

    def sample(self, y: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Decoded means for y (B, 1), z ~ p(z | y) from standard normal ``noise`` (drawn unless given).
        Shape (B, D)."""
        if noise is None:
            noise = self.noise(len(y)).to(y.device)  # (B, Z)
        return self.mean_of(self.decode_logits(self.prior_at(y, noise), y))  # (B, D)

    def reconstruction(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """-log p(x | z, y) per sample (B,), from the decoder's output (B, D)."""
        c = self.config
        if c.likelihood == "gaussian":
            log_sigma = self.log_sigma.clamp_min(_MIN_LOG_SIGMA)  # (1,)
            squared = (x - out).pow(2) * torch.exp(-2 * log_sigma) / 2  # (B, D)
            return (squared + log_sigma + 0.5 * math.log(2 * math.pi)).sum(1)
        k = c.n_categorical
        bernoulli = F.binary_cross_entropy_with_logits(out[:, k:], x[:, k:], reduction="none").sum(1)  # (B,)
        if k == 0:
            return bernoulli
        fractions = x[:, :k] / x[:, :k].sum(1, keepdim=True).clamp_min(1e-12)  # (B, K)
        cross_entropy = -(fractions * torch.log_softmax(out[:, :k], dim=1)).sum(1)  # (B,)
        return k * cross_entropy + bernoulli

    def loss(
        self, x: torch.Tensor, y: torch.Tensor, noise: torch.Tensor, kl_weight: float = 1.0
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """-ELBO per sample (eq. 1); ``noise`` ~ N(0, I) of shape (B, Z) for the reparameterisation.

        The KL term is weighted by ``beta * kl_weight`` (``kl_weight``: a warm-up ramp from 0 to 1) and,
        with free bits, each unit's batch-mean KL counts as at least ``free_bits``; the logged ``kl`` is
        the true one.
        """
        mean, log_var = self.encode(x, y)  # (B, Z), (B, Z)
        z = mean + torch.exp(0.5 * log_var) * noise  # (B, Z)
        reconstruction = self.reconstruction(self.decode_logits(z, y), x).mean()
        kl_units = kl_per_unit(mean, log_var, *self.prior_of(y)).mean(0)  # (Z,)
        kl = kl_units.sum()
        penalised = kl_units.clamp_min(self.config.free_bits).sum() if self.config.free_bits > 0 else kl
        loss = reconstruction + self.config.beta * kl_weight * penalised
        logs = {"reconstruction": reconstruction, "kl": kl}
        if self.config.adversary > 0:
            # the adversary lowers its error; through the reversed gradient the encoder raises it, so z
            # carries no information about y and the decoder has to take y from its input
            guess = self.adversary(_ReverseGradient.apply(z))  # (B, 1)
            error = (guess - y).pow(2).mean() / y.var().clamp_min(1e-6)  # 1: no better than the mean
            loss = loss + self.config.adversary * error
            logs["adversary"] = error
        if self.config.property_weight > 0:
            # P learns real rows only; the decoder learns to make prior samples at y score y under a P
            # it cannot move (CondGAN's lambda_3 and lambda_2 terms, eq. 2)
            spread = y.var().clamp_min(1e-6)  # both errors in units of the batch's variance of y
            # on x^b alone: decoded descriptors need not agree with the decoded elements, and P must
            # not be satisfied by them
            k = self.config.n_elements or self.config.x_dim
            real = (self.predictor(x[:, :k]) - y).pow(2).mean() / spread
            fake = self.mean_of(self.decode_logits(self.prior_at(y, noise), y))[:, :k]  # (B, K)
            frozen = {k: v.detach() for k, v in self.predictor.named_parameters()}
            judged = torch.func.functional_call(self.predictor, frozen, (fake,))  # (B, 1)
            miss = (judged - y).pow(2).mean() / spread
            loss = loss + real + self.config.property_weight * miss
            logs |= {"property_real": real, "property_fake": miss}
        return loss, logs


class _ReverseGradient(torch.autograd.Function):
    """Identity forward; the gradient's sign flipped backward (Ganin & Lempitsky 2015)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return -grad


def kl_per_unit(
    mean: torch.Tensor,
    log_var: torch.Tensor,
    prior_mean: torch.Tensor | None = None,
    prior_log_var: torch.Tensor | None = None,
) -> torch.Tensor:
    """KL(N(mean, exp(log_var)) || N(prior_mean, exp(prior_log_var))) for each sample and latent unit;
    the prior N(0, 1) unless given. Shape (B, Z).

    >>> kl_per_unit(torch.zeros(1, 2), torch.zeros(1, 2)).tolist()
    [[0.0, 0.0]]
    """
    if prior_mean is None or prior_log_var is None:
        return 0.5 * (mean.pow(2) + log_var.exp() - 1 - log_var)
    ratio = (log_var - prior_log_var).exp()  # (B, Z)
    return 0.5 * (ratio + (mean - prior_mean).pow(2) / prior_log_var.exp() - 1 - (log_var - prior_log_var))


@dataclass(frozen=True)
class PosteriorUse:
    """How much the encoder uses its latent units, over a set of rows: posterior collapse shows as
    no active unit and a KL near zero."""

    active_units: int  # units whose posterior mean varies over the rows (variance > 0.01; Burda et al.)
    kl_per_unit: tuple[float, ...]  # mean KL of each unit, nats, largest first
    kl: float  # their sum, nats per row


def posterior_use(vae: CondVAE, x: torch.Tensor, y: torch.Tensor) -> PosteriorUse:
    """``PosteriorUse`` of rows x (N, D) at properties y (N, 1), both normalised.

    >>> use = posterior_use(CondVAE(CondVAEConfig(x_dim=4)), torch.rand(8, 4), torch.rand(8, 1))
    >>> len(use.kl_per_unit)
    10
    """
    with torch.no_grad():
        mean, log_var = vae.encode(x, y)  # (N, Z), (N, Z)
        units = kl_per_unit(mean, log_var, *vae.prior_of(y)).mean(0)  # (Z,)
        active = int((mean.var(0) > 0.01).sum()) if len(x) > 1 else 0
    ordered = sorted((float(v) for v in units), reverse=True)
    return PosteriorUse(active, tuple(ordered), float(units.sum()))
