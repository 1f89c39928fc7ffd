"""The fast GAN step (``models/fast``) against the readable ``models/cgan.py``."""

from __future__ import annotations

import pytest
import torch

from stoichgen.models import CondGAN, CondGANConfig
from stoichgen.models.cgan import textbook_update
from stoichgen.models.fast import gan as fast
from stoichgen.models.fast.stepper import GANStepper, adam_update
from stoichgen.options import make_options


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
        fake = gan.sample(y, z)
    return gan, (real, fake, y, eps)


def _shard(t, shards):
    return t.reshape(shards, -1, t.shape[-1])


@pytest.mark.parametrize("hidden", [(60, 30), (30, 60, 20)])
def test_fast_critic_loss_equals_textbook(hidden):
    gan, batch = _critic_batch(hidden)
    loss, parts = fast.critic_loss(gan, *batch)
    ref, ref_parts = gan.critic_loss(*batch)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-9)
    assert parts["gp"].item() > 0
    for key, value in ref_parts.items():
        torch.testing.assert_close(parts[key], value, rtol=1e-9, atol=1e-12)
    params = list(gan.critic.parameters())
    for a, b in zip(torch.autograd.grad(loss, params), torch.autograd.grad(ref, params), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("hidden", [(40,), (60, 30), (30, 60, 20)])
@pytest.mark.parametrize("shards", [1, 2, 4])
def test_hand_written_critic_gradients_equal_textbook_autograd(hidden, shards):
    gan, batch = _critic_batch(hidden)
    loss, parts = gan.critic_loss(*batch)  # the readable reference, double back-propagation
    names = [name for name, _ in gan.critic.named_parameters()]
    expected = dict(zip(names, torch.autograd.grad(loss, list(gan.critic.parameters())), strict=True))
    grads, logs = fast.critic_gradients(gan, *(_shard(t, shards) for t in batch))
    assert sorted(grads) == sorted(names)
    for name in names:
        assert grads[name].shape == expected[name].shape, name
        torch.testing.assert_close(grads[name], expected[name], rtol=1e-7, atol=1e-10, msg=name)
    for key, value in parts.items():
        torch.testing.assert_close(logs[key], value)


def test_sharded_forms_equal_readable():
    gan, batch = _critic_batch((60, 30))
    real, fake, y, eps = batch
    loss, _ = gan.critic_loss(*batch)
    sharded, _ = fast.critic_loss(gan, *(_shard(t, 4) for t in batch))
    assert sharded.item() == pytest.approx(loss.item(), rel=1e-9)  # the fast norm adds 1e-12 under the root
    z = torch.rand(32, 10, dtype=torch.float64)
    loss, _ = gan.generator_loss(y, z)
    sharded, _ = fast.generator_loss(gan, _shard(y, 2), _shard(z, 2))
    assert sharded.item() == pytest.approx(loss.item(), rel=1e-12)
    torch.testing.assert_close(fast.sample(gan, _shard(y, 2), _shard(z, 2)).reshape(32, -1), gan.sample(y, z))


@pytest.mark.parametrize("shards", [1, 2])
def test_gan_stepper_equals_textbook_loop(shards):
    """The stepper (hand-written critic gradient, shards, flat Adam) makes the paper's update."""
    c, b, n = 3, 16, 100
    g = torch.Generator().manual_seed(0)
    x, y = (
        torch.rand(n, 12, generator=g, dtype=torch.float64),
        torch.rand(n, 1, generator=g, dtype=torch.float64),
    )
    draws = [
        (
            torch.randint(0, n, (c, b), generator=g),
            torch.rand(c + 1, b, 10, generator=g, dtype=torch.float64) * 2 - 1,
            torch.rand(c, b, 1, generator=g, dtype=torch.float64),
        )
        for _ in range(3)
    ]
    options = make_options("cgan", "bp", "paper", n_critic=c, batch_size=b, compile=False, lr=1e-3)
    torch.manual_seed(0)
    reference = CondGAN(CondGANConfig(x_dim=12, lambda_fake_property=2.0, lambda_real_property=3.0)).double()
    gan = CondGAN(reference.config).double()
    gan.load_state_dict(reference.state_dict())
    initial = {k: v.clone() for k, v in reference.state_dict().items()}
    stepper = GANStepper(gan, options, torch.device("cpu"))
    stepper.shards = shards
    for step, (idx, z, eps) in enumerate(draws):
        stepper.step(x, y, idx.view(-1), z, eps, step)
    stepper.sync_to_model()
    opt_c = torch.optim.Adam(reference.critic.parameters(), lr=1e-3, betas=options.betas)
    opt_g = torch.optim.Adam(reference.generator.parameters(), lr=1e-3, betas=options.betas)
    for idx, z, eps in draws:
        real = x[idx]  # (C, B, D)
        prop = torch.cat([y[idx], y[idx[-1]][None]])  # (C + 1, B, 1): the generator uses the last batch's
        textbook_update(reference, opt_c, opt_g, real, prop, z, eps)
    expected = reference.state_dict()
    for name, value in gan.state_dict().items():
        torch.testing.assert_close(value, expected[name], rtol=1e-8, atol=1e-11, msg=name)
        if name != "critic.score.bias":  # D's bias cancels in E[D(fake)] - E[D(real)]: zero gradient
            assert not torch.equal(value, initial[name]), f"{name} did not move"


def _gan_draws(n_steps, c=2, b=16, n=100, d=12):
    g = torch.Generator().manual_seed(5)
    x, y = torch.rand(n, d, generator=g), torch.rand(n, 1, generator=g)
    idx = torch.randint(0, n, (n_steps, c * b), generator=g)  # (S, C * B)
    z = torch.rand(n_steps, c + 1, b, 10, generator=g) * 2 - 1  # (S, C + 1, B, Z)
    eps = torch.rand(n_steps, c, b, 1, generator=g)  # (S, C, B, 1)
    return x, y, idx, z, eps


def _stepper(device, compile=False, c=2, b=16):
    options = make_options("cgan", "bp", n_critic=c, batch_size=b, compile=compile, lr_decay_steps=10,
                           lr_final_fraction=0.5, generator_ema=0.9)  # fmt: skip
    torch.manual_seed(0)
    return GANStepper(CondGAN(CondGANConfig(x_dim=12)), options, torch.device(device))


def test_several_steps_at_once_equal_steps_one_by_one():
    """``steps`` (what a CUDA graph captures; on a CPU run as it is) = ``step`` after ``step``."""
    x, y, idx, z, eps = _gan_draws(5)
    one, many = _stepper("cpu"), _stepper("cpu")
    assert many.graph_steps(100) == 1  # no graphs on a CPU
    logs = [one.step(x, y, idx[i], z[i], eps[i], 3 + i) for i in range(5)]
    chunked = many.steps(x, y, idx[:2], z[:2], eps[:2], 3)
    rest = many.steps(x, y, idx[2:], z[2:], eps[2:], 5)
    for a, b in zip(one.state(), many.state(), strict=True):
        assert torch.equal(a, b)
    for key in logs[0]:
        assert torch.equal(torch.cat([chunked[key], rest[key]]), torch.stack([entry[key] for entry in logs]))


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
def test_graph_steps_divide_the_log_interval():
    stepper = _stepper("cuda", compile=True)
    assert [stepper.graph_steps(n) for n in (100, 50, 30, 7)] == [50, 50, 10, 1]
    assert _stepper("cuda", compile=False).graph_steps(100) == 1


@cuda
def test_captured_graph_steps_equal_eager_steps_on_cuda():
    """Replays of the captured graph (compiled step) = the eager step, within float32 rounding, also
    when steps outside the graph come between replays."""
    x, y, idx, z, eps = (t.cuda() for t in _gan_draws(9))
    eager, graphed = _stepper("cuda"), _stepper("cuda", compile=True)
    for i in range(9):
        eager.step(x, y, idx[i], z[i], eps[i], i)
    graphed.steps(x, y, idx[:4], z[:4], eps[:4], 0)
    graphed.steps(x, y, idx[4:5], z[4:5], eps[4:5], 4, capture=False)
    logs = graphed.steps(x, y, idx[5:], z[5:], eps[5:], 5)
    assert len(graphed._graphs) == 1 and logs["gp"].shape == (4,)
    for a, b in zip(eager.state(), graphed.state(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_adam_update_flushes_subnormal_moments_and_moves_weights_as_torch_adam():
    """A weight with no gradient whose moments are subnormal: ``adam_update`` sets them to 0 where
    ``torch.optim.Adam`` keeps them, and both leave the weights where they were."""
    betas, t = (0.9, 0.999), 40
    param = torch.tensor([0.1, -0.2, 0.3])
    grad = torch.tensor([0.0, 0.0, 1e-3])
    m, v = torch.tensor([1e-38, -1e-38, 1e-3]), torch.tensor([1e-39, 1e-39, 1e-6])
    reference = param.clone().requires_grad_()
    optimizer = torch.optim.Adam([reference], lr=1e-3, betas=betas)
    optimizer.state[reference] = {
        "step": torch.tensor(float(t - 1)),
        "exp_avg": m.clone(),
        "exp_avg_sq": v.clone(),
    }
    reference.grad = grad.clone()
    optimizer.step()
    new, new_m, new_v = adam_update(param, grad, m, v, torch.tensor(float(t)), torch.tensor(1e-3), betas)
    tiny = torch.finfo(torch.float32).tiny
    kept = optimizer.state[reference]["exp_avg"]
    assert (kept[:2] != 0).all() and (kept[:2].abs() < tiny).all()  # the reference's stay subnormal
    assert new_m[:2].tolist() == [0.0, 0.0] and new_v[:2].tolist() == [0.0, 0.0]
    assert torch.equal(new[:2], param[:2])
    torch.testing.assert_close(new, reference.detach(), rtol=1e-6, atol=0)
