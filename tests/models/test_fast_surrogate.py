"""The surrogate's stacked step (``models/fast/surrogate.py``) against the readable ensemble + Adam."""

from __future__ import annotations

import pytest
import torch

from stoichgen.models.fast.surrogate import SurrogateStepper, ensemble_loss, stack_members
from stoichgen.models.layers import linears
from stoichgen.models.surrogate import SurrogateConfig, SurrogateEnsemble
from stoichgen.options import make_options
from stoichgen.run import RunRecord, bundled_run_dir

K, B, D, N = 3, 16, 12, 200


def _data():
    g = torch.Generator().manual_seed(3)
    x, y = torch.rand(N, D, generator=g), torch.rand(N, 1, generator=g)
    rows = [torch.randint(0, N, (K, B), generator=g) for _ in range(6)]
    return x, y, rows


def _net(seed=0):
    torch.manual_seed(seed)
    return SurrogateEnsemble(SurrogateConfig(x_dim=D, hidden=(10, 7), members=K))


def _reference(net, x, y, rows, optimizer=None):
    optimizer = optimizer or torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.9, 0.999))
    logs = []
    for r in rows:
        loss, parts = net.loss(x[r], y[r])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        logs.append((loss.item(), parts["mse"].item()))
    return optimizer, logs


def _options(compile=False):
    return make_options("surrogate", "bp", members=K, compile=compile)


def test_stacked_loss_and_gradients_equal_the_ensemble():
    net, (x, y, rows) = _net(), _data()
    loss, parts = net.loss(x[rows[0]], y[rows[0]])
    params = [p.requires_grad_() for p in stack_members(net)]
    fast, mse = ensemble_loss(params, x[rows[0]], y[rows[0]])
    torch.testing.assert_close(fast, loss)
    torch.testing.assert_close(mse, parts["mse"])
    expected = stack_members_of(torch.autograd.grad(loss, list(net.parameters())), net)
    for got, want in zip(torch.autograd.grad(fast, params), expected, strict=True):
        torch.testing.assert_close(got, want)


def stack_members_of(grads, net):
    """Per-member gradients (``net.parameters()`` order) stacked like ``stack_members``."""
    n = len(grads) // net.config.members
    return [torch.stack([grads[k * n + j] for k in range(net.config.members)]) for j in range(n)]


def test_steps_equal_adam_on_the_readable_ensemble():
    x, y, rows = _data()
    reference = _net()
    optimizer, ref_logs = _reference(reference, x, y, rows)
    net = _net()
    stepper = SurrogateStepper(net, _options(), torch.device("cpu"))
    logs = [stepper.step(x, y, r, i) for i, r in enumerate(rows)]
    stepper.sync_to_model()
    for a, b in zip(net.state_dict().values(), reference.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for (loss, mse), got in zip(ref_logs, logs, strict=True):
        assert got["loss"].item() == pytest.approx(loss, rel=1e-5)
        assert got["mse"].item() == pytest.approx(mse, rel=1e-5)
    # the checkpointed optimiser state is the reference optimiser's, tensor for tensor
    state, ref_state = stepper.optimizer_state(len(rows)), optimizer.state_dict()
    assert state["param_groups"] == ref_state["param_groups"]
    assert sorted(state["state"]) == sorted(ref_state["state"])
    for i, entry in ref_state["state"].items():
        assert sorted(state["state"][i]) == sorted(entry)
        for key, value in entry.items():
            torch.testing.assert_close(state["state"][i][key], value, rtol=1e-5, atol=1e-9)


def test_resumes_from_the_reference_loops_state_and_back():
    """A run checkpointed by the old per-member loop continues in the stacked one, and the other way."""
    x, y, rows = _data()
    whole = _net()
    _reference(whole, x, y, rows)
    old = _net()
    optimizer, _ = _reference(old, x, y, rows[:3])
    net = _net(seed=9)  # other weights: load must replace them
    net.load_state_dict(old.state_dict())
    stepper = SurrogateStepper(net, _options(), torch.device("cpu"))
    stepper.load(optimizer.state_dict(), torch.device("cpu"))
    for i, r in enumerate(rows[3:], start=3):
        stepper.step(x, y, r, i)
    stepper.sync_to_model()
    for a, b in zip(net.state_dict().values(), whole.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # and back: the reference optimiser takes the stacked loop's state
    back = _net()
    back.load_state_dict(net.state_dict())
    resumed = torch.optim.Adam(back.parameters(), lr=1e-3, betas=(0.9, 0.999))
    resumed.load_state_dict(stepper.optimizer_state(len(rows)))
    assert resumed.state_dict()["state"][0]["step"].item() == len(rows)


def test_compiled_step_matches_eager():
    x, y, rows = _data()
    eager, compiled = (SurrogateStepper(_net(), _options(c), torch.device("cpu")) for c in (False, True))
    for i, r in enumerate(rows[:3]):
        eager.step(x, y, r, i)
        compiled.step(x, y, r, i)
    for a, b in zip(eager.params, compiled.params, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_bundled_surrogate_loads_and_its_weights_stack():
    record = RunRecord.load(bundled_run_dir("surrogate-bp"))
    net = record.model()
    stacked = stack_members(net)
    assert stacked[0].shape == (net.config.members, net.config.hidden[0], record.x_dim)
    x = torch.rand(4, record.x_dim)
    params = [p.detach() for p in stacked]
    loss, _ = ensemble_loss(
        params, x.expand(net.config.members, 4, -1), torch.zeros(net.config.members, 4, 1)
    )
    expected, _ = net.loss(x.expand(net.config.members, 4, -1), torch.zeros(net.config.members, 4, 1))
    torch.testing.assert_close(loss, expected)


def test_several_steps_at_once_equal_steps_one_by_one():
    """``steps`` (what a CUDA graph captures; on a CPU run as it is) = ``step`` after ``step``."""
    x, y, rows = _data()
    one, many = (SurrogateStepper(_net(), _options(), torch.device("cpu")) for _ in range(2))
    assert many.graph_steps(100) == 1  # no graphs on a CPU
    logs = [one.step(x, y, r, i) for i, r in enumerate(rows)]
    chunked = [many.steps(x, y, torch.stack(rows[:4]), 0), many.steps(x, y, torch.stack(rows[4:]), 4)]
    for a, b in zip(one.state(), many.state(), strict=True):
        assert torch.equal(a, b)
    for key in logs[0]:
        assert torch.equal(torch.cat([c[key] for c in chunked]), torch.stack([entry[key] for entry in logs]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_captured_graph_steps_equal_eager_steps_on_cuda():
    x, y = (t.cuda() for t in _data()[:2])
    rows = torch.stack(_data()[2]).cuda()  # (6, K, B)
    eager = SurrogateStepper(_net(), _options(), torch.device("cuda"))
    graphed = SurrogateStepper(_net(), _options(compile=True), torch.device("cuda"))
    assert graphed.graph_steps(100) == 50 and eager.graph_steps(100) == 1
    for i in range(6):
        eager.step(x, y, rows[i], i)
    graphed.steps(x, y, rows[:2], 0)
    graphed.steps(x, y, rows[2:3], 2, capture=False)
    graphed.steps(x, y, rows[3:5], 3)
    graphed.step(x, y, rows[5], 5)
    assert len(graphed._graphs) == 1
    for a, b in zip(eager.state(), graphed.state(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_subnormal_moments_are_flushed_and_the_weights_stay_the_reference_ones():
    """An input column seen only by the first steps: its weights' first moments decay below float32's
    smallest normal number in the reference Adam, and to 0 in the stacked step; the weights agree."""
    g = torch.Generator().manual_seed(5)
    x, y = torch.rand(N, D, generator=g), torch.rand(N, 1, generator=g)
    late = x.clone()
    late[:, 0] = 0.0  # after the first steps, column 0 is never seen again: its weights' gradients are 0
    rows = [torch.randint(0, N, (K, B), generator=g) for _ in range(900)]
    reference, net = _net(), _net()
    optimizer = torch.optim.Adam(reference.parameters(), lr=1e-3, betas=(0.9, 0.999))
    stepper = SurrogateStepper(net, _options(), torch.device("cpu"))
    for i, r in enumerate(rows):
        data = x if i < 5 else late
        loss, _ = reference.loss(data[r], y[r])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        stepper.step(data, y, r, i)
    tiny = torch.finfo(torch.float32).tiny
    first_layer_m = optimizer.state[linears(reference.members[0])[0].weight]["exp_avg"]
    assert ((first_layer_m != 0) & (first_layer_m.abs() < tiny)).any()  # the reference went subnormal
    assert not ((stepper.m[0] != 0) & (stepper.m[0].abs() < tiny)).any()
    stepper.sync_to_model()
    for a, b in zip(net.state_dict().values(), reference.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
