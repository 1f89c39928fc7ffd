"""The CondGAN's training step made fast: the same losses as ``models/cgan.py`` in forms that need
fewer, larger matrix products, and the critic's gradient written out by hand.

Used by training only (``models/fast/stepper.py``); ``tests/models/test_fast.py`` checks every function
here against the readable ``CondGAN.critic_loss`` / ``generator_loss`` (double back-propagation).

Inputs are (B, .) or split into shards (S, B / S, .); the expectations run over all rows either way, so
the shards only decide how the work is cut (``affine``), not the loss.

>>> from stoichgen.models.cgan import CondGANConfig
>>> gan = CondGAN(CondGANConfig(x_dim=6))
>>> real, y, eps = torch.rand(8, 6), torch.rand(8, 1), torch.rand(8, 1)
>>> fake = gan.sample(y).detach()
>>> fast, _ = critic_loss(gan, real, fake, y, eps)
>>> textbook, _ = gan.critic_loss(real, fake, y, eps)
>>> abs(fast.item() - textbook.item()) < 1e-4
True
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from stoichgen.models.cgan import CondGAN, Critic
from stoichgen.models.layers import linears


def affine(x: torch.Tensor, linear: nn.Linear) -> torch.Tensor:
    """``linear(x)`` for x (N, I) or for shards x (S, N, I).

    Shards go through one batched product: ATen runs the shards of a ``bmm`` on separate threads, where
    it barely parallelises one small matrix product; and the bias is a separate add, which compiled
    code fuses into the activation that follows (``baddbmm`` would first copy it into the output).
    """
    if x.dim() == 2:
        return F.linear(x, linear.weight, linear.bias)  # (N, O)
    return torch.bmm(x, linear.weight.T.expand(x.shape[0], -1, -1)) + linear.bias  # (S, N, O)


def heads(critic: Critic, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """D and P from the last hidden layer (..., H). Written as products and sums, not matrix products:
    a one-column product costs a library call, and compiled code fuses these instead."""
    score = (h * critic.score.weight).sum(-1, keepdim=True) + critic.score.bias  # (..., 1)
    prop = (h * critic.property.weight).sum(-1, keepdim=True) + critic.property.bias  # (..., 1)
    return score, prop


def critic_forward(gan: CondGAN, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """D(x) and P(x) for x (B, D) or shards (S, B, D); shapes (..., 1) each."""
    h = x
    for linear in gan.critic.linears():
        h = torch.relu(affine(h, linear))  # (..., H_l)
    return heads(gan.critic, h)


def sample(gan: CondGAN, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """G(z, y) for y (B, 1) and z (B, Z), or shards (S, B, .). Shape (..., D)."""
    h = torch.cat([z, y], dim=-1)  # (..., Z + 1)
    layers = linears(gan.generator)
    for linear in layers[:-1]:
        h = torch.relu(affine(h, linear))  # (..., H_l)
    return torch.sigmoid(affine(h, layers[-1]))  # (..., D)


def generator_loss(
    gan: CondGAN, y: torch.Tensor, z: torch.Tensor
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``CondGAN.generator_loss`` for (B, .) or sharded inputs."""
    score, prop = critic_forward(gan, sample(gan, y, z))  # (..., 1), (..., 1)
    property_mse = F.mse_loss(prop, y)
    loss = -score.mean() + gan.config.lambda_fake_property * property_mse
    return loss, {"g_adv": -score.mean(), "p_fake_mse": property_mse}


def critic_loss(
    gan: CondGAN, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor, eps: torch.Tensor
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``CondGAN.critic_loss`` in a reassociated but exactly equivalent form, since the first layer
    dominates the cost: the first-layer pre-activation of x_hat = eps x + (1 - eps) x_tilde is the same
    mix of those of x and x_tilde (the layer is affine), and ||dD/dx||^2 = g^T (W_1 W_1^T) g with
    g = dD/d(pre-activation)."""
    c = gan.config
    terms = critic_pass(gan, real, fake, y, eps).terms
    loss = terms["wasserstein"] + c.lambda_gp * terms["gp"] + c.lambda_real_property * terms["p_real_mse"]
    return loss, terms


class CriticPass(NamedTuple):
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


def critic_pass(
    gan: CondGAN, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor, eps: torch.Tensor
) -> CriticPass:
    """The forward pass of ``critic_loss`` (inputs as there), keeping what ``critic_gradients`` needs.

    For a ReLU network dD/dz_1 = diag(m_1) W_2^T ... diag(m_L) w_D with m_l the ReLU masks, whose own
    derivative is zero almost everywhere; so this closed form, differentiable in the weights, equals
    double back-propagation for the gradient penalty while needing only first-order autograd.
    """
    if real.dim() == 2:
        real, fake, y, eps = real[None], fake[None], y[None], eps[None]
    critic = gan.critic
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
    score, prop = heads(critic, hs[-1])  # (S, 3b, 1) each
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
    return CriticPass(x, eps, zs, hs, masks, gs, q, norm, score, prop_error, terms)


def critic_gradients(
    gan: CondGAN, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor, eps: torch.Tensor
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The gradient of ``critic_loss`` in the critic's parameters (by name, as in
    ``gan.critic.named_parameters()``) and the loss terms, by hand instead of autograd.

    Same inputs and the same value as ``critic_loss``; ``tests/test_models.py`` checks both against
    autograd. Written out because the step is bound by the number of small matrix products, and
    the hand-written backward needs 10 per critic step where autograd's needs 16 (2 hidden layers):
    - the penalty's ||dD/dx||^2 = g^T G g (G = W_1 W_1^T symmetric) has d/dg = 2 G g, the product
      the forward already made, and d/dG = sum_i a_i g_i g_i^T, one product;
    - each hidden layer's weight gradient from the main path and from the penalty's chain
      g_(l-1) = (g_l W_l) * m_(l-1) is one product over the rows of both.
    """
    c = gan.config
    critic = gan.critic
    layers = critic.linears()
    w_score, w_prop = critic.score.weight, critic.property.weight  # (1, H_L) each
    fwd = critic_pass(gan, real, fake, y, eps)
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
