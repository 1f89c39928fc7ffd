from __future__ import annotations

import json

import pytest
import torch

from stoichgen.cli import main
from stoichgen.models import CondGAN, CondGANConfig
from stoichgen.train import (
    CHECKPOINT,
    FORMAT_VERSION,
    DataSource,
    GANStepper,
    TrainError,
    load_checkpoint,
    make_options,
    model_from_checkpoint,
    train,
)


def _train(small_csv, out, model="cgan", **kw):
    kw.setdefault("steps", 6)
    return train(
        model, "bp", out, data=DataSource(str(small_csv)), compile=False, batch_size=64, log_every=2,
        progress=False, **kw,
    )  # fmt: skip


def _weights(run_dir):
    return load_checkpoint(run_dir)["state_dict"]


@pytest.mark.parametrize("model", ["cgan", "cvae", "dnn"])
def test_run_dir_contents_and_reload(small_csv, tmp_path, model):
    result = _train(small_csv, tmp_path / "run", model)
    assert result.steps == 6
    files = {p.name for p in (tmp_path / "run").iterdir()}
    assert {CHECKPOINT, "config.json", "losses.jsonl"} <= files
    payload = torch.load(tmp_path / "run" / CHECKPOINT, weights_only=True)
    assert payload["format_version"] == FORMAT_VERSION
    assert payload["representation"] == "bp"
    assert len(payload["vocabulary"]) + 58 == payload["model_config"]["x_dim"]
    assert payload["split"]["kind"] == "random"
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["train"]["model"] == model
    assert [
        json.loads(line)["step"] for line in (tmp_path / "run" / "losses.jsonl").read_text().splitlines()
    ] == [
        2,
        4,
        6,
    ]
    reloaded = model_from_checkpoint(payload)
    x = torch.rand(5, payload["model_config"]["x_dim"])
    y = torch.rand(5, 1)
    with torch.no_grad():
        if model == "dnn":
            torch.testing.assert_close(reloaded.predict(x), result.model.predict(x), rtol=0, atol=0)
        else:
            z = torch.rand(5, 10)
            torch.testing.assert_close(reloaded.generate(y, z), result.model.generate(y, z), rtol=0, atol=0)


@pytest.mark.parametrize("model", ["cgan", "cvae"])
def test_same_seed_same_weights(small_csv, tmp_path, model):
    _train(small_csv, tmp_path / "a", model)
    _train(small_csv, tmp_path / "b", model)
    _train(small_csv, tmp_path / "c", model, seed=1)
    a, b, c = _weights(tmp_path / "a"), _weights(tmp_path / "b"), _weights(tmp_path / "c")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize(("model", "extra"), [("cgan", {}), ("cgan", {"generator_ema": 0.9}), ("dnn", {})])
def test_resume_equals_uninterrupted(small_csv, tmp_path, model, extra):
    _train(small_csv, tmp_path / "whole", model, steps=8, **extra)
    _train(small_csv, tmp_path / "parts", model, steps=4, lr_decay_steps=8, **extra)  # stopped at 4 of 8
    resumed = train(model, "bp", tmp_path / "parts", resume=True, steps=8, progress=False)
    assert resumed.steps == 8
    whole, parts = _weights(tmp_path / "whole"), _weights(tmp_path / "parts")
    assert all(torch.equal(whole[k], parts[k]) for k in whole)

    def losses(run):
        rows = [json.loads(line) for line in (tmp_path / run / "losses.jsonl").read_text().splitlines()]
        return [{k: v for k, v in row.items() if k != "elapsed_s"} for row in rows]

    assert losses("whole") == losses("parts")


def test_generator_ema_is_saved_for_sampling(small_csv, tmp_path):
    raw = load_checkpoint(_train(small_csv, tmp_path / "raw", steps=1, generator_ema=0.0).run_dir)
    averaged = load_checkpoint(_train(small_csv, tmp_path / "ema", steps=1, generator_ema=0.25).run_dir)
    config = model_from_checkpoint(raw).config
    torch.manual_seed(0)  # the run's seed: the weights before the first step
    start = CondGAN(config).state_dict()
    names = [k for k in raw["state_dict"] if k.startswith("generator.")]
    for name in names:
        stepped = raw["state_dict"][name]
        torch.testing.assert_close(averaged["optimizer"]["generator_weights"][f"gan.{name}"], stepped)
        expected = 0.1 * start[name] + 0.9 * stepped  # step 0's decay: min(0.25, 1 / 10)
        torch.testing.assert_close(averaged["state_dict"][name], expected, rtol=1e-6, atol=1e-7)
        assert not torch.equal(averaged["state_dict"][name], stepped)
    critic = [k for k in raw["state_dict"] if k.startswith("critic.")]
    assert all(torch.equal(raw["state_dict"][k], averaged["state_dict"][k]) for k in critic)


def test_cgan_default_differs_by_representation():
    bp, b = make_options("cgan", "bp"), make_options("cgan", "b")
    assert (bp.n_critic, bp.generator_ema, bp.hidden) == (1, 0.999, (120, 240))
    # the x^bp tuning collapses x^b samples to one element, so x^b keeps the previous default
    assert (b.n_critic, b.generator_ema, b.hidden, b.steps) == (5, 0.0, (60, 120), 90_000)
    assert make_options("cgan", "b", n_critic=2).n_critic == 2  # explicit options still win


def test_generator_average_warms_up():
    options = make_options("cgan", "bp", generator_ema=0.999, compile=False)
    stepper = GANStepper(CondGAN(CondGANConfig(x_dim=12)), options, torch.device("cpu"))
    assert stepper.ema_decay(0) == pytest.approx(0.1)  # a short run is not stuck near the start
    assert stepper.ema_decay(90) == pytest.approx(0.91)
    assert stepper.ema_decay(50_000) == 0.999


def test_resume_trims_log_written_after_checkpoint(small_csv, tmp_path):
    _train(small_csv, tmp_path / "run", steps=4)
    with (tmp_path / "run" / "losses.jsonl").open("a") as log:  # as if killed after a later log line
        log.write(json.dumps({"step": 6, "elapsed_s": 1.0, "gp": 0.0}) + "\n")
    train("cgan", "bp", tmp_path / "run", resume=True, steps=6, progress=False)
    steps = [
        json.loads(line)["step"] for line in (tmp_path / "run" / "losses.jsonl").read_text().splitlines()
    ]
    assert steps == [2, 4, 6]


def test_non_empty_run_dir_refused_without_resume_or_force(small_csv, tmp_path):
    _train(small_csv, tmp_path / "run")
    before = (tmp_path / "run" / CHECKPOINT).read_bytes()
    with pytest.raises(TrainError, match="not empty"):
        _train(small_csv, tmp_path / "run")
    assert (tmp_path / "run" / CHECKPOINT).read_bytes() == before
    _train(small_csv, tmp_path / "run", force=True, seed=3)
    assert (tmp_path / "run" / CHECKPOINT).read_bytes() != before


def test_fewer_rows_than_a_batch(small_csv, tmp_path):
    with pytest.raises(TrainError, match="fewer than one batch of 1000"):
        train("dnn", "b", tmp_path / "run", data=DataSource(str(small_csv)), batch_size=1000, steps=1)


def test_bad_checkpoints(small_csv, tmp_path):
    _train(small_csv, tmp_path / "run")
    path = tmp_path / "run" / CHECKPOINT
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 99
    torch.save(payload, tmp_path / "v99.pt")
    with pytest.raises(TrainError, match="format version 99"):
        load_checkpoint(tmp_path / "v99.pt")
    (tmp_path / "corrupt.pt").write_bytes(path.read_bytes()[:100])
    with pytest.raises(TrainError, match="corrupt"):
        load_checkpoint(tmp_path / "corrupt.pt")
    with pytest.raises(TrainError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing")


def test_resume_on_other_vocabulary_refused(small_csv, tmp_path):
    csv = tmp_path / "mine.csv"
    csv.write_text(small_csv.read_text())
    _train(csv, tmp_path / "run")
    before = (tmp_path / "run" / CHECKPOINT).read_bytes()
    csv.write_text(small_csv.read_text() + "XeF2,-1.0\nKrF2,-0.5\n")
    with pytest.raises(TrainError, match="different element vocabulary"):
        train("cgan", "bp", tmp_path / "run", resume=True, steps=10, progress=False)
    assert (tmp_path / "run" / CHECKPOINT).read_bytes() == before


def test_unknown_model_and_repr(tmp_path):
    with pytest.raises(TrainError, match="unknown model 'gan'"):
        train("gan", "bp", tmp_path / "a")
    with pytest.raises(TrainError, match="unknown representation 'p'"):
        train("cgan", "p", tmp_path / "b")


def test_cli_train_in_process(small_csv, tmp_path, capsys):
    args = ["train", "--model", "dnn", "--repr", "b", "--csv", str(small_csv), "--steps", "3"]
    args += ["--out", str(tmp_path / "run"), "--no-compile", "--composition-column", "composition"]
    assert main(args) == 0
    assert "trained 3 steps" in capsys.readouterr().out
    assert main(args) == 2  # non-empty run dir
    assert "not empty" in capsys.readouterr().err
    assert main([*args, "--resume", "--steps", "5"]) == 0
    assert load_checkpoint(tmp_path / "run")["progress"]["step"] == 5
    with pytest.raises(SystemExit) as info:
        main(["train", "--model", "gan", "--repr", "b", "--out", str(tmp_path / "x")])
    assert info.value.code != 0


@pytest.mark.slow
def test_compiled_gan_step_matches_eager(small_csv, tmp_path):
    eager = _train(small_csv, tmp_path / "eager", steps=3)
    compiled = train(
        "cgan", "bp", tmp_path / "compiled", data=DataSource(str(small_csv)), compile=True, batch_size=64,
        log_every=1, steps=3, progress=False,
    )  # fmt: skip
    a, b = eager.model.state_dict(), compiled.model.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)


def _textbook_gan_steps(gan, x, y, draws, lr, betas, lambdas):
    """The paper's update as one would write it: torch.optim.Adam, double back-propagation."""
    gp, fake_prop, real_prop = lambdas
    opt_c = torch.optim.Adam(gan.critic.parameters(), lr=lr, betas=betas)
    opt_g = torch.optim.Adam(gan.generator.parameters(), lr=lr, betas=betas)
    for idx, z, eps in draws:
        for k in range(eps.shape[0]):
            real, prop = x[idx[k]], y[idx[k]]
            with torch.no_grad():
                fake = gan.generate(prop, z[k])
            score_real, prop_real = gan.critic(real)
            score_fake, _ = gan.critic(fake)
            mixed = (eps[k] * real + (1 - eps[k]) * fake).requires_grad_(True)
            (grad,) = torch.autograd.grad(gan.critic(mixed)[0].sum(), mixed, create_graph=True)
            penalty = ((grad.norm(dim=1) - 1) ** 2).mean()
            loss = (
                score_fake.mean()
                - score_real.mean()
                + gp * penalty
                + real_prop * ((prop_real - prop) ** 2).mean()
            )
            opt_c.zero_grad()
            loss.backward()
            opt_c.step()
        score, prop_fake = gan.critic(gan.generate(prop, z[-1]))
        loss = -score.mean() + fake_prop * ((prop_fake - prop) ** 2).mean()
        opt_g.zero_grad()
        loss.backward()
        opt_g.step()


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
    _textbook_gan_steps(reference, x, y, draws, 1e-3, options.betas, (10.0, 2.0, 3.0))
    expected = reference.state_dict()
    for name, value in gan.state_dict().items():
        torch.testing.assert_close(value, expected[name], rtol=1e-8, atol=1e-11, msg=name)
        if name != "critic.score.bias":  # D's bias cancels in E[D(fake)] - E[D(real)]: zero gradient
            assert not torch.equal(value, initial[name]), f"{name} did not move"
