"""The CondVAE's likelihood, KL and conditioning options (issue 22; docs/reproduction/cvae.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from stoichgen.data import DataSource
from stoichgen.errors import InputError, TrainError
from stoichgen.models import CondVAE, CondVAEConfig
from stoichgen.models.cvae import kl_per_unit, posterior_use
from stoichgen.options import make_options, stored_options
from stoichgen.run import RunRecord
from stoichgen.train import train

# each new option alone, and the default preset's combination
VARIANTS = {
    "bernoulli": {},
    "gaussian": {"likelihood": "gaussian"},
    "softmax": {"likelihood": "softmax", "n_elements": 9},
    "free-bits": {"free_bits": 0.5},
    "conditional-prior": {"conditional_prior": True},
    "adversary": {"adversary": 10.0},
    "property": {"property_weight": 10.0, "n_elements": 9},
    "default-preset": {
        "likelihood": "softmax",
        "n_elements": 9,
        "adversary": 100.0,
        "property_weight": 100.0,
    },
}


@pytest.fixture
def toy():
    """Rows like min-max normalised x^bp: 9 sparse element columns, 3 descriptor columns."""
    g = torch.Generator().manual_seed(0)
    elements = torch.rand(128, 9, generator=g) * (torch.rand(128, 9, generator=g) < 0.3)
    elements[:, 0] += 0.1  # every row has an element
    x = torch.cat([elements / elements.sum(1, keepdim=True), torch.rand(128, 3, generator=g)], dim=1)
    y = elements[:, :3].sum(1, keepdim=True) / 3  # a property that depends on x
    return x, y, g


@pytest.mark.parametrize("name", VARIANTS)
def test_shapes_and_ranges(toy, name):
    x, y, g = toy
    vae = CondVAE(CondVAEConfig(x_dim=12, **VARIANTS[name]))
    mean, log_var = vae.encode(x, y)
    assert mean.shape == (128, 10) and log_var.shape == (128, 10)
    sample = vae.sample(y, vae.noise(128, g))
    assert sample.shape == (128, 12) and sample.min() >= 0 and sample.max() <= 1
    if vae.config.likelihood == "softmax":  # the elements' fractions sum to one by construction
        torch.testing.assert_close(sample[:, :9].sum(1), torch.ones(128))
    loss, parts = vae.loss(x, y, torch.randn(128, 10, generator=g))
    assert loss.shape == () and torch.isfinite(loss)
    assert parts["reconstruction"].shape == () and parts["kl"].item() >= 0


@pytest.mark.parametrize("name", VARIANTS)
def test_a_tiny_training_run_lowers_the_loss(toy, name):
    x, y, g = toy
    torch.manual_seed(0)
    vae = CondVAE(CondVAEConfig(x_dim=12, **VARIANTS[name]))
    optimizer = torch.optim.Adam(vae.parameters(), lr=1e-2)
    noise = torch.randn(128, 10, generator=g)

    before = vae.loss(x, y, noise)[0].item()
    for _ in range(100):
        optimizer.zero_grad()
        vae.loss(x, y, noise)[0].backward()
        optimizer.step()
    assert vae.loss(x, y, noise)[0].item() < before - 0.1 * abs(before)


def test_kl_weight_free_bits_and_the_logged_kl(toy):
    x, y, g = toy
    noise = torch.randn(128, 10, generator=g)
    torch.manual_seed(0)
    plain = CondVAE(CondVAEConfig(x_dim=12))
    loss, parts = plain.loss(x, y, noise, kl_weight=0.0)  # the warm-up's first step
    assert loss.item() == pytest.approx(parts["reconstruction"].item())
    torch.manual_seed(0)
    free = CondVAE(CondVAEConfig(x_dim=12, free_bits=2.0))
    loss, parts = free.loss(x, y, noise)
    # a fresh encoder's units carry far less than 2 nats each: every unit counts as 2, the log is true
    assert loss.item() == pytest.approx(parts["reconstruction"].item() + 10 * 2.0, rel=1e-6)
    assert parts["kl"].item() < 10 * 2.0


def test_kl_against_a_conditional_prior_is_zero_at_the_prior():
    mean, log_var = torch.randn(4, 3), torch.randn(4, 3)
    torch.testing.assert_close(kl_per_unit(mean, log_var, mean, log_var), torch.zeros(4, 3))
    torch.testing.assert_close(
        kl_per_unit(mean, log_var, torch.zeros(4, 3), torch.zeros(4, 3)), kl_per_unit(mean, log_var)
    )


def test_posterior_use_sees_a_collapsed_encoder(toy):
    x, y, _ = toy
    vae = CondVAE(CondVAEConfig(x_dim=12))
    with torch.no_grad():  # an encoder whose posterior is the prior for every row
        for layer in (vae.to_mean, vae.to_log_var):
            layer.weight.zero_()
            layer.bias.zero_()
    use = posterior_use(vae, x, y)
    assert use.active_units == 0 and use.kl == pytest.approx(0.0, abs=1e-6)


def test_bad_options_are_refused_by_name():
    with pytest.raises(InputError, match="likelihood 'poisson'"):
        CondVAEConfig(x_dim=4, likelihood="poisson")
    with pytest.raises(InputError, match="free_bits"):
        make_options("cvae", "b", free_bits=-1.0)
    with pytest.raises(InputError, match="likelihood"):
        make_options("cvae", "b", likelihood="poisson")
    with pytest.raises(InputError, match="latent_dim"):
        make_options("cvae", "b", latent_dim=0)


def _train(small_csv, out, **kw):
    kw.setdefault("steps", 6)
    return train(
        "cvae", "bp", out, data=DataSource(str(small_csv)), compile=False, batch_size=64, log_every=2,
        progress=False, **kw,
    )  # fmt: skip


def test_the_default_preset_round_trips_through_its_checkpoint(small_csv, tmp_path):
    result = _train(small_csv, tmp_path / "run", kl_warmup_steps=4, free_bits=0.1)
    record = RunRecord.load(tmp_path / "run")
    config = record.model_config
    assert (config.likelihood, config.adversary, config.property_weight) == ("softmax", 100.0, 100.0)
    assert config.n_elements == config.x_dim - 58 and config.free_bits == 0.1
    options = stored_options(record)
    assert (options.likelihood, options.kl_warmup_steps, options.free_bits) == ("softmax", 4, 0.1)
    reloaded = record.model()
    y, noise = torch.rand(5, 1), torch.randn(5, 10)
    with torch.no_grad():
        torch.testing.assert_close(reloaded.sample(y, noise), result.model.sample(y, noise), rtol=0, atol=0)
    logged = [json.loads(line) for line in (tmp_path / "run" / "losses.jsonl").read_text().splitlines()]
    assert {"reconstruction", "kl", "adversary", "property_real", "property_fake"} <= set(logged[-1])


@pytest.mark.parametrize(
    ("asked", "named"),
    [({"likelihood": "bernoulli"}, "likelihood 'bernoulli'"), ({"adversary": 1.0}, "adversary 1.0"),
     ({"kl_warmup_steps": 5}, "kl_warmup_steps 5"), ({"latent_dim": 4}, "latent_dim 4")],
)  # fmt: skip
def test_resume_refuses_a_changed_cvae_option_by_name(small_csv, tmp_path, asked, named):
    _train(small_csv, tmp_path / "run")
    with pytest.raises(TrainError, match="cannot resume") as info:
        train("cvae", "bp", tmp_path / "run", resume=True, steps=8, progress=False, **asked)
    assert named in str(info.value)


def test_resume_equals_uninterrupted(small_csv, tmp_path):
    _train(small_csv, tmp_path / "whole", steps=8, kl_warmup_steps=6)
    _train(small_csv, tmp_path / "parts", steps=4, kl_warmup_steps=6)
    train("cvae", "bp", tmp_path / "parts", resume=True, steps=8, progress=False)
    whole, parts = (
        RunRecord.load(tmp_path / "whole").state_dict,
        RunRecord.load(tmp_path / "parts").state_dict,
    )
    assert all(torch.equal(whole[k], parts[k]) for k in whole)


def test_checkpoints_from_before_the_options_load_as_bernoulli():
    # the bundled cvae-bp before the softmax preset (issue 22), kept as a fixture of the old format
    record = RunRecord.load(Path(__file__).parents[1] / "data" / "cvae-bp-bernoulli")
    assert record.model_config.likelihood == "bernoulli" and record.model_config.n_elements == 0
    options = stored_options(record)
    assert (options.likelihood, options.kl_weight, options.adversary, options.latent_dim) == (
        "bernoulli", 1.0, 0.0, 10,
    )  # fmt: skip


def test_cli_options_are_stored_and_resume_refuses_them_by_name(small_csv, tmp_path, capsys):
    from stoichgen.cli import main

    run = str(tmp_path / "run")
    args = ["train", "--model", "cvae", "--repr", "b", "--csv", str(small_csv), "--out", run, "--no-compile"]
    assert main([*args, "--steps", "2", "--likelihood", "gaussian", "--kl-warmup-steps", "3"]) == 0
    options = stored_options(RunRecord.load(run))
    assert (options.likelihood, options.kl_warmup_steps) == ("gaussian", 3)
    capsys.readouterr()
    assert main([*args, "--resume", "--steps", "4", "--likelihood", "softmax"]) == 2
    err = capsys.readouterr().err
    assert "likelihood 'softmax' (the run has 'gaussian')" in err and "Traceback" not in err
    assert main([*args, "--resume", "--steps", "4"]) == 0  # the stored options continue
