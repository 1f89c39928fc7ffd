from __future__ import annotations

import pytest
import torch

from stoichgen import models
from stoichgen.models import DNN, CondGAN, CondGANConfig, CondVAE, CondVAEConfig, DNNConfig


@pytest.fixture
def toy():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 12, generator=g)
    y = torch.rand(64, 1, generator=g)
    return x, y, g


def test_shapes(toy):
    x, y, g = toy
    gan = CondGAN(CondGANConfig(x_dim=12))
    fake = gan.sample(y)
    assert fake.shape == (64, 12) and fake.min() >= 0 and fake.max() <= 1
    score, prop = gan.critic(x)
    assert score.shape == (64, 1) and prop.shape == (64, 1)
    vae = CondVAE(CondVAEConfig(x_dim=12))
    mean, log_var = vae.encode(x, y)
    assert mean.shape == (64, 10) and log_var.shape == (64, 10)
    assert vae.sample(y).shape == (64, 12)
    assert DNN(DNNConfig(x_dim=12)).predict(x).shape == (64, 1)


def test_layer_sizes_follow_config():
    gan = CondGAN(CondGANConfig(x_dim=147))
    gen_sizes = [m.out_features for m in gan.generator.modules() if isinstance(m, torch.nn.Linear)]
    critic_sizes = [m.out_features for m in gan.critic.linears()]
    assert gen_sizes == [30, 60, 147] and critic_sizes == [60, 30]
    paper_text = CondGAN(CondGANConfig(x_dim=147, generator_hidden=(60, 30), critic_hidden=(30, 60)))
    assert [m.out_features for m in paper_text.critic.linears()] == [30, 60]


def _one_step_lowers(loss_fn, params):
    before = loss_fn().item()
    opt = torch.optim.SGD(params, lr=1e-2)
    opt.zero_grad()
    loss_fn().backward()
    opt.step()
    return loss_fn().item() < before


def test_one_step_lowers_each_loss(toy):
    x, y, g = toy
    torch.manual_seed(0)
    gan = CondGAN(CondGANConfig(x_dim=12))
    z = torch.rand(64, 10, generator=g) * 2 - 1
    eps = torch.rand(64, 1, generator=g)
    with torch.no_grad():
        fake = gan.sample(y, z)
    assert _one_step_lowers(lambda: gan.critic_loss(x, fake, y, eps)[0], gan.critic.parameters())
    assert _one_step_lowers(lambda: gan.generator_loss(y, z)[0], gan.generator.parameters())
    vae = CondVAE(CondVAEConfig(x_dim=12))
    noise = torch.randn(64, 10, generator=g)
    assert _one_step_lowers(lambda: vae.loss(x, y, noise)[0], vae.parameters())
    dnn = DNN(DNNConfig(x_dim=12))
    assert _one_step_lowers(lambda: dnn.loss(x, y)[0], dnn.parameters())


def test_vae_loss_is_negative_elbo(toy):
    x, y, g = toy
    vae = CondVAE(CondVAEConfig(x_dim=12))
    noise = torch.zeros(64, 10)
    loss, parts = vae.loss(x, y, noise)
    assert loss.item() == pytest.approx(parts["reconstruction"].item() + parts["kl"].item(), rel=1e-6)
    assert parts["kl"].item() >= 0


def test_textbook_critic_loss_is_double_backprop():
    """The readable loss's penalty is the gradient norm at the mixed points, computed independently."""
    torch.manual_seed(1)
    gan = CondGAN(CondGANConfig(x_dim=7)).double()
    g = torch.Generator().manual_seed(2)
    real, y = (
        torch.rand(16, 7, generator=g, dtype=torch.float64),
        torch.rand(16, 1, generator=g, dtype=torch.float64),
    )
    eps = torch.rand(16, 1, generator=g, dtype=torch.float64)
    fake = gan.sample(y).detach()
    _, terms = gan.critic_loss(real, fake, y, eps)
    norms = []
    for row in range(16):  # one row at a time, with a fresh graph each: no batching shortcuts
        point = (eps[row] * real[row] + (1 - eps[row]) * fake[row]).clone().requires_grad_(True)
        (slope,) = torch.autograd.grad(gan.critic(point[None])[0].sum(), point)
        norms.append(slope.norm())
    expected = ((torch.stack(norms) - 1) ** 2).mean()
    assert terms["gp"].item() == pytest.approx(expected.item(), rel=1e-12)


def test_registry_names_every_kind():
    for name, kind in models.MODEL_KINDS.items():
        model = kind.module(kind.config(x_dim=5))
        assert models.kind_of(model).name == name
        assert hasattr(model, "sample") == kind.samples and hasattr(model, "predict") == kind.predicts
