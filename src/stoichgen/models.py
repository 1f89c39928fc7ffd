"""The paper's models (Sec. 3, 5.2): CondVAE, CondGAN (auxiliary-regressor WGAN-GP) and the DNN baseline.

Each model is a small ``nn.Module`` built from one frozen dataclass config. Inputs ``x`` are min-max
normalised vectors (x^b or x^bp) in [0, 1]; ``y`` is the min-max normalised property, shape (B, 1).

>>> gan = CondGAN(CondGANConfig(x_dim=147))
>>> gan.generate(torch.zeros(4, 1)).shape
torch.Size([4, 147])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

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


def affine(x: torch.Tensor, linear: nn.Linear) -> torch.Tensor:
    """``linear(x)`` for x (N, I) or for shards x (S, N, I).

    Shards go through one batched product: ATen runs the shards of a ``bmm`` on separate threads, where
    it barely parallelises one small matrix product; and the bias is a separate add, which compiled
    code fuses into the activation that follows (``baddbmm`` would first copy it into the output).
    """
    if x.dim() == 2:
        return F.linear(x, linear.weight, linear.bias)  # (N, O)
    return torch.bmm(x, linear.weight.T.expand(x.shape[0], -1, -1)) + linear.bias  # (S, N, O)


def linears(module: nn.Module) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


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
        """D(x) and P(x) for x (B, D), or for shards x (S, B, D); shapes (..., 1) each."""
        h = x
        for linear in self.linears():
            h = torch.relu(affine(h, linear))  # (..., H_l)
        return self.heads(h)

    def heads(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """D and P from the last hidden layer (..., H). Written as products and sums, not matrix
        products: a one-column product costs a library call, and compiled code fuses these instead."""
        score = (h * self.score.weight).sum(-1, keepdim=True) + self.score.bias  # (..., 1)
        prop = (h * self.property.weight).sum(-1, keepdim=True) + self.property.bias  # (..., 1)
        return score, prop

    def linears(self) -> list[nn.Linear]:
        return linears(self.body)


class _CriticPass(NamedTuple):
    """The critic's forward pass over real, fake and mixed rows: what its loss and gradient share."""

    x: torch.Tensor  # real and fake rows, (S, 2b, D)
    eps: torch.Tensor  # the mixing weights, (S, b, 1)
    zs: list[torch.Tensor]  # pre-activation of each hidden layer, (S, 3b, H_l): real, fake, mixed rows
    hs: list[torch.Tensor]  # relu(zs)
    masks: list[torch.Tensor]  # ReLU masks of the mixed rows, (S, b, H_l)
    gs: list[torch.Tensor]  # dD/dz_l for the mixed rows, (S, b, H_l)
    q: torch.Tensor  # g_1 W_1 W_1^T, (S, b, H_1)
    norm: torch.Tensor  # ||dD/dx|| of the mixed rows, (S, b, 1)
    score: torch.Tensor  # D, (S, 3b, 1)
    prop_error: torch.Tensor  # P(real) - y, (S, b, 1)
    terms: dict[str, torch.Tensor]  # the loss terms: wasserstein, gp, p_real_mse


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
        """G(z, y) for y (B, 1), or for shards y (S, B, 1); z ~ U(-1, 1)^Z unless given."""
        if z is None:
            z = torch.rand(*y.shape[:-1], self.config.z_dim, device=y.device) * 2 - 1  # (..., Z)
        h = torch.cat([z, y], dim=-1)  # (..., Z + 1)
        layers = linears(self.generator)
        for linear in layers[:-1]:
            h = torch.relu(affine(h, linear))  # (..., H_l)
        return torch.sigmoid(affine(h, layers[-1]))  # (..., D)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """P(x): the critic's property head, normalised units. Shape (B, 1)."""
        return self.critic(x)[1]

    def critic_loss(
        self, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor, eps: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """E[D(fake)] - E[D(real)] + lambda_1 GP + lambda_3 E[(y - P(real))^2], for ``fake`` = G(z, y) drawn
        with the generator held fixed (``generate`` under ``no_grad``) and ``y`` the real rows' property.

        Inputs are (B, .) or split into shards (S, B / S, .); the expectations run over all rows either
        way, so the shards only decide how the work is cut (``affine``), not the loss.

        Computed in a reassociated but exactly equivalent form, since the first layer dominates the cost:
        the first-layer pre-activation of x_hat = eps x + (1 - eps) x_tilde is the same mix of those of x
        and x_tilde (the layer is affine), and ||dD/dx||^2 = g^T (W_1 W_1^T) g with g = dD/d(pre-activation).
        ``tests/test_models.py`` checks loss and gradients against plain double back-propagation.
        """
        c = self.config
        terms = self._critic_pass(real, fake, y, eps).terms
        loss = terms["wasserstein"] + c.lambda_gp * terms["gp"] + c.lambda_real_property * terms["p_real_mse"]
        return loss, terms

    def _critic_pass(
        self, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor, eps: torch.Tensor
    ) -> _CriticPass:
        """The forward pass of ``critic_loss`` (inputs as there), keeping what ``critic_gradients`` needs.

        For a ReLU network dD/dz_1 = diag(m_1) W_2^T ... diag(m_L) w_D with m_l the ReLU masks, whose own
        derivative is zero almost everywhere; so this closed form, differentiable in the weights, equals
        double back-propagation for the gradient penalty while needing only first-order autograd.
        """
        if real.dim() == 2:
            real, fake, y, eps = real[None], fake[None], y[None], eps[None]
        critic = self.critic
        layers = critic.linears()
        s, b, _ = real.shape

        # real and fake (and their mix) share one product per layer: fewer, larger kernels
        x = torch.cat([real, fake], dim=1)  # (S, 2b, D)
        pre = affine(x, layers[0])  # (S, 2b, H_1)
        pre_mixed = eps * pre[:, :b] + (1 - eps) * pre[:, b:]  # (S, b, H_1)
        zs = [torch.cat([pre, pre_mixed], dim=1)]  # (S, 3b, H_1)
        hs = [torch.relu(zs[0])]
        for layer in layers[1:]:
            zs.append(affine(hs[-1], layer))  # (S, 3b, H_l)
            hs.append(torch.relu(zs[-1]))
        score, prop = critic.heads(hs[-1])  # (S, 3b, 1) each
        masks = [z[:, 2 * b :] > 0 for z in zs]  # (S, b, H_l)
        gs = [critic.score.weight * masks[-1]]  # from the top layer down
        for layer, mask in zip(reversed(layers[1:]), reversed(masks[:-1]), strict=True):
            gs.insert(0, torch.bmm(gs[0], layer.weight.expand(s, -1, -1)) * mask)  # (S, b, H_(l-1))
        gram = layers[0].weight @ layers[0].weight.T  # (H_1, H_1)
        q = torch.bmm(gs[0], gram.expand(s, -1, -1))  # (S, b, H_1)
        norm = ((q * gs[0]).sum(-1, keepdim=True) + 1e-12).sqrt()  # (S, b, 1)
        prop_error = prop[:, :b] - y  # (S, b, 1)
        terms = {
            "wasserstein": score[:, b : 2 * b].mean() - score[:, :b].mean(),
            "gp": ((norm - 1) ** 2).mean(),
            "p_real_mse": (prop_error**2).mean(),
        }
        return _CriticPass(x, eps, zs, hs, masks, gs, q, norm, score, prop_error, terms)

    def critic_gradients(
        self, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor, eps: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """The gradient of ``critic_loss`` in the critic's parameters (by name, as in
        ``self.critic.named_parameters()``) and the loss terms, by hand instead of autograd.

        Same inputs and the same value as ``critic_loss``; ``tests/test_models.py`` checks both against
        autograd. Written out because the step is bound by the number of small matrix products, and
        the hand-written backward needs 10 per critic step where autograd's needs 16 (2 hidden layers):
        - the penalty's ||dD/dx||^2 = g^T G g (G = W_1 W_1^T symmetric) has d/dg = 2 G g, the product
          the forward already made, and d/dG = sum_i a_i g_i g_i^T, one product;
        - each hidden layer's weight gradient from the main path and from the penalty's chain
          g_(l-1) = (g_l W_l) * m_(l-1) is one product over the rows of both.
        """
        c = self.config
        critic = self.critic
        layers = critic.linears()
        w_score, w_prop = critic.score.weight, critic.property.weight  # (1, H_L) each
        fwd = self._critic_pass(real, fake, y, eps)
        zs, hs, masks, gs, eps = fwd.zs, fwd.hs, fwd.masks, fwd.gs, fwd.eps
        s, b = fwd.norm.shape[:2]
        n = s * b  # rows of each kind; every expectation is over n rows
        h = hs[-1]  # (S, 3b, H_L)

        def matmul(a: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
            return torch.bmm(a, w.expand(s, -1, -1))  # (S, rows, in) @ (in, out)

        def weight_grad(d_out: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
            return torch.bmm(d_out.transpose(1, 2), inputs).sum(0)  # (out, in), summed over shards

        # backward: the penalty's chain first (its dD/dz_l need no main-path results) ...
        a = c.lambda_gp * (fwd.norm - 1) / (n * fwd.norm)  # d loss / d ||.||^2 per mixed row, (S, b, 1)
        d_g = 2 * a * fwd.q  # d loss / d g_1, (S, b, H_1)
        grads: dict[str, torch.Tensor] = {}
        d_gram = weight_grad(a * gs[0], gs[0])  # (H_1, H_1), symmetric
        chain_errors = []  # d loss / d (g_l W_l), per layer l >= 2
        for i, layer in enumerate(layers[1:], start=1):
            e = d_g * masks[i - 1]  # (S, b, H_(i-1))
            chain_errors.append(e)
            d_g = matmul(e, layer.weight.T)  # d loss / d g_l, (S, b, H_l)
        d_w_score = (d_g * masks[-1]).sum((0, 1))  # (H_L,)

        # ... then the main path, merging each layer's two weight gradients into one product
        d_score = torch.zeros_like(fwd.score)  # (S, 3b, 1)
        d_score[:, :b] = -1 / n
        d_score[:, b : 2 * b] = 1 / n
        d_prop = 2 * c.lambda_real_property * fwd.prop_error / n  # real rows only, (S, b, 1)
        grads["score.weight"] = ((d_score * h).sum((0, 1)) + d_w_score)[None]  # (1, H_L)
        grads["score.bias"] = d_score.sum().reshape(1)
        grads["property.weight"] = (d_prop * h[:, :b]).sum((0, 1))[None]  # (1, H_L)
        grads["property.bias"] = d_prop.sum().reshape(1)
        d_h = d_score * w_score  # (S, 3b, H_L)
        d_h[:, :b] += d_prop * w_prop
        names = [f"body.{name}" for name, m in critic.body.named_modules() if isinstance(m, nn.Linear)]
        for i in range(len(layers) - 1, 0, -1):
            d_z = d_h * (zs[i] > 0)  # (S, 3b, H_i)
            grads[f"{names[i]}.weight"] = weight_grad(
                torch.cat([d_z, gs[i]], dim=1), torch.cat([hs[i - 1], chain_errors[i - 1]], dim=1)
            )  # (H_i, H_(i-1))
            grads[f"{names[i]}.bias"] = d_z.sum((0, 1))
            d_h = matmul(d_z, layers[i].weight)  # (S, 3b, H_(i-1))
        d_z = d_h * (zs[0] > 0)  # (S, 3b, H_1)
        d_pre = d_z[:, : 2 * b] + torch.cat([eps * d_z[:, 2 * b :], (1 - eps) * d_z[:, 2 * b :]], dim=1)
        grads[f"{names[0]}.weight"] = weight_grad(d_pre, fwd.x) + 2 * d_gram @ layers[0].weight  # (H_1, D)
        grads[f"{names[0]}.bias"] = d_pre.sum((0, 1))
        return grads, fwd.terms

    def generator_loss(
        self, y: torch.Tensor, z: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """-E[D(G(z, y))] + lambda_2 E[(y - P(G(z, y)))^2]; only the generator's weights should step.
        Inputs (B, .) or shards (S, B / S, .), as for ``critic_loss``."""
        fake = self.generate(y, z)  # (..., D)
        score, prop = self.critic(fake)  # (..., 1), (..., 1)
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
