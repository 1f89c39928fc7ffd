from __future__ import annotations

import pytest
import torch

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
    fake = gan.generate(y)
    assert fake.shape == (64, 12) and fake.min() >= 0 and fake.max() <= 1
    score, prop = gan.critic(x)
    assert score.shape == (64, 1) and prop.shape == (64, 1)
    vae = CondVAE(CondVAEConfig(x_dim=12))
    mean, log_var = vae.encode(x, y)
    assert mean.shape == (64, 10) and log_var.shape == (64, 10)
    assert vae.generate(y).shape == (64, 12)
    assert DNN(DNNConfig(x_dim=12)).predict(x).shape == (64, 1)


def test_layer_sizes_follow_config():
    gan = CondGAN(CondGANConfig(x_dim=147))
    gen_sizes = [m.out_features for m in gan.generator.modules() if isinstance(m, torch.nn.Linear)]
    critic_sizes = [m.out_features for m in gan.critic.linears()]
    assert gen_sizes == [30, 60, 147] and critic_sizes == [60, 30]
    paper_text = CondGAN(CondGANConfig(x_dim=147, generator_hidden=(60, 30), critic_hidden=(30, 60)))
    assert [m.out_features for m in paper_text.critic.linears()] == [30, 60]


def reference_critic_loss(gan: CondGAN, real, y, z, eps):
    """eq. (2) for the critic, written the textbook way with double back-propagation."""
    with torch.no_grad():
        fake = gan.generate(y, z)
    score_real, prop_real = gan.critic(real)
    score_fake, _ = gan.critic(fake)
    mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)
    score_mixed, _ = gan.critic(mixed)
    (grad,) = torch.autograd.grad(score_mixed.sum(), mixed, create_graph=True)
    penalty = ((grad.norm(dim=1) - 1) ** 2).mean()
    return score_fake.mean() - score_real.mean() + 10 * penalty + ((prop_real - y) ** 2).mean()


@pytest.mark.parametrize("hidden", [(60, 30), (30, 60, 20)])
def test_critic_loss_equals_double_backprop(hidden):
    torch.manual_seed(1)
    gan = CondGAN(CondGANConfig(x_dim=20, critic_hidden=hidden)).double()
    g = torch.Generator().manual_seed(2)
    real = torch.rand(32, 20, generator=g, dtype=torch.float64)
    y = torch.rand(32, 1, generator=g, dtype=torch.float64)
    z = torch.rand(32, 10, generator=g, dtype=torch.float64) * 2 - 1
    eps = torch.rand(32, 1, generator=g, dtype=torch.float64)
    with torch.no_grad():
        fake = gan.generate(y, z)
    loss, parts = gan.critic_loss(real, fake, y, eps)
    ref = reference_critic_loss(gan, real, y, z, eps)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-9)
    assert parts["gp"].item() > 0
    params = list(gan.critic.parameters())
    for a, b in zip(torch.autograd.grad(loss, params), torch.autograd.grad(ref, params), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-9)


def _critic_batch(hidden, n=32, d=20):
    torch.manual_seed(1)
    gan = CondGAN(CondGANConfig(x_dim=d, critic_hidden=hidden, lambda_real_property=3.0)).double()
    g = torch.Generator().manual_seed(2)
    real, y = (
        torch.rand(n, d, generator=g, dtype=torch.float64),
        torch.rand(n, 1, generator=g, dtype=torch.float64),
    )
    z = torch.rand(n, 10, generator=g, dtype=torch.float64) * 2 - 1
    eps = torch.rand(n, 1, generator=g, dtype=torch.float64)
    with torch.no_grad():
        fake = gan.generate(y, z)
    return gan, (real, fake, y, eps)


def _shard(t, shards):
    return t.reshape(shards, -1, t.shape[-1])


@pytest.mark.parametrize("hidden", [(40,), (60, 30), (30, 60, 20)])
@pytest.mark.parametrize("shards", [1, 2, 4])
def test_hand_written_critic_gradients_equal_autograd(hidden, shards):
    gan, batch = _critic_batch(hidden)
    loss, parts = gan.critic_loss(*batch)
    names = [name for name, _ in gan.critic.named_parameters()]
    expected = dict(zip(names, torch.autograd.grad(loss, list(gan.critic.parameters())), strict=True))
    grads, logs = gan.critic_gradients(*(_shard(t, shards) for t in batch))
    assert sorted(grads) == sorted(names)
    for name in names:
        assert grads[name].shape == expected[name].shape, name
        torch.testing.assert_close(grads[name], expected[name], rtol=1e-7, atol=1e-10, msg=name)
    for key, value in parts.items():
        torch.testing.assert_close(logs[key], value)


def test_sharded_losses_equal_unsharded():
    gan, batch = _critic_batch((60, 30))
    real, fake, y, eps = batch
    loss, _ = gan.critic_loss(*batch)
    sharded, _ = gan.critic_loss(*(_shard(t, 4) for t in batch))
    assert sharded.item() == pytest.approx(loss.item(), rel=1e-12)
    z = torch.rand(32, 10, dtype=torch.float64)
    loss, _ = gan.generator_loss(y, z)
    sharded, _ = gan.generator_loss(_shard(y, 2), _shard(z, 2))
    assert sharded.item() == pytest.approx(loss.item(), rel=1e-12)
    torch.testing.assert_close(gan.generate(_shard(y, 2), _shard(z, 2)).reshape(32, -1), gan.generate(y, z))


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
        fake = gan.generate(y, z)
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
