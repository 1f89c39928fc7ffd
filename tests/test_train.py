from __future__ import annotations

import json

import pytest
import torch

from stoichgen.data import DataSource
from stoichgen.errors import DataError, InputError, RunError, TrainError
from stoichgen.models import CondGAN, CondGANConfig
from stoichgen.models.fast.stepper import GANStepper
from stoichgen.options import make_options
from stoichgen.run import CHECKPOINT, FORMAT_VERSION, RunRecord
from stoichgen.train import train


def _train(small_csv, out, model="cgan", **kw):
    kw.setdefault("steps", 6)
    return train(
        model, "bp", out, data=DataSource(str(small_csv)), compile=False, batch_size=64, log_every=2,
        progress=False, **kw,
    )  # fmt: skip


def _weights(run_dir):
    return RunRecord.load(run_dir).state_dict


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
    reloaded = RunRecord.load(tmp_path / "run").model()
    x = torch.rand(5, payload["model_config"]["x_dim"])
    y = torch.rand(5, 1)
    with torch.no_grad():
        if model == "dnn":
            torch.testing.assert_close(reloaded.predict(x), result.model.predict(x), rtol=0, atol=0)
        else:
            z = torch.rand(5, 10)
            torch.testing.assert_close(reloaded.sample(y, z), result.model.sample(y, z), rtol=0, atol=0)


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


@pytest.mark.parametrize("model", ["cgan", "cvae", "dnn", "surrogate"])
def test_a_run_trained_on_cuda_resumes_on_the_cpu(small_csv, tmp_path, model, capsys, monkeypatch):
    """A run's device is where it trained: without it here, --resume continues on the CPU, saying so once,
    to the weights a CPU run's continuation reaches."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    extra = {"members": 2} if model == "surrogate" else {}
    _train(small_csv, tmp_path / "cpu", model, steps=4, lr_decay_steps=8, **extra)
    (tmp_path / "gpu").mkdir()
    for name in (CHECKPOINT, "config.json", "losses.jsonl"):
        (tmp_path / "gpu" / name).write_bytes((tmp_path / "cpu" / name).read_bytes())
    payload = torch.load(tmp_path / "gpu" / CHECKPOINT, weights_only=True)
    payload["train"]["device"] = "cuda"  # as a run trained on a GPU records it
    torch.save(payload, tmp_path / "gpu" / CHECKPOINT)
    capsys.readouterr()
    with pytest.raises(TrainError, match="no CUDA device"):  # asked for by name, it is still refused
        train(model, "bp", tmp_path / "gpu", resume=True, steps=8, device="cuda", progress=False)
    for run in ("cpu", "gpu"):
        train(model, "bp", tmp_path / run, resume=True, steps=8, progress=False)
    lines = capsys.readouterr().err.splitlines()
    assert [line for line in lines if "cuda" in line] == [
        f"{tmp_path / 'gpu'} trained on cuda; no CUDA device here, so it continues on the cpu"
    ]
    cpu, gpu = _weights(tmp_path / "cpu"), _weights(tmp_path / "gpu")
    assert all(torch.equal(cpu[k], gpu[k]) for k in cpu)
    assert RunRecord.load(tmp_path / "gpu").train["device"] == "cuda"  # still where it trained first


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(
    ("model", "compile"), [("cgan", True), ("cgan", False), ("surrogate", True), ("dnn", False)]
)
def test_a_run_trained_on_cuda_continues_on_the_cpu_near_a_cpu_run(small_csv, tmp_path, model, compile):
    """Trained on a GPU (compiled: CUDA graphs of 2 steps here), continued on the CPU: the weights of
    a run trained on the CPU throughout, within float32 rounding. Where rounding moves a ReLU input
    across 0, that unit's Adam updates differ by up to lr a step: a few weights may, by at most
    about 3 lr a step (seen once on an H200 for the surrogate, at rtol 1e-3 / atol 1e-4)."""
    extra = {"members": 2} if model == "surrogate" else {}
    _train(small_csv, tmp_path / "cpu", model, steps=8, lr_decay_steps=8, **extra)
    train(model, "bp", tmp_path / "moved", data=DataSource(str(small_csv)), compile=compile, batch_size=64,
          log_every=2, progress=False, steps=4, lr_decay_steps=8, device="cuda", **extra)  # fmt: skip
    assert RunRecord.load(tmp_path / "moved").train["device"] == "cuda"
    train(model, "bp", tmp_path / "moved", resume=True, steps=8, device="cpu", compile=False, progress=False)
    cpu, moved = _weights(tmp_path / "cpu"), _weights(tmp_path / "moved")
    apart = torch.cat([(moved[k] - cpu[k]).abs().view(-1) for k in cpu])
    tolerance = 1e-4 + 1e-3 * torch.cat([cpu[k].abs().view(-1) for k in cpu])
    assert float((apart > tolerance).float().mean()) < 0.01, "more than 1 % of the weights differ"
    assert float(apart.max()) <= 4 * 1e-3 * 8  # Adam moves a weight by at most about 3.2 lr a step


def test_gan_steps_taken_in_chunks_equal_steps_one_by_one(small_csv, tmp_path, monkeypatch):
    """The loop's path for CUDA graphs (draws of several steps at once, ``GANStepper.steps``), run on
    the CPU: the same weights and log as one step at a time."""
    _train(small_csv, tmp_path / "one", steps=7, generator_ema=0.9)
    monkeypatch.setattr(GANStepper, "graph_steps", lambda self, log_every: 2)
    _train(small_csv, tmp_path / "chunks", steps=7, generator_ema=0.9)  # logs every 2 steps
    one, chunks = _weights(tmp_path / "one"), _weights(tmp_path / "chunks")
    assert all(torch.equal(one[k], chunks[k]) for k in one)
    lines = (tmp_path / "chunks" / "losses.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [2, 4, 6, 7]
    reference = (tmp_path / "one" / "losses.jsonl").read_text().splitlines()
    for a, b in zip(lines, reference, strict=True):  # the same logged means, elapsed times aside
        a, b = json.loads(a), json.loads(b)
        assert a.pop("elapsed_s") >= 0 and b.pop("elapsed_s") >= 0 and a == b


def test_generator_ema_is_saved_for_sampling(small_csv, tmp_path):
    raw = RunRecord.load(_train(small_csv, tmp_path / "raw", steps=1, generator_ema=0.0).run_dir).to_payload()
    averaged = RunRecord.load(_train(small_csv, tmp_path / "ema", steps=1, generator_ema=0.25).run_dir)
    averaged = averaged.to_payload()
    config = RunRecord.from_payload(raw).model_config
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
    with pytest.raises(TrainError, match="holds a run"):
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
    with pytest.raises(RunError, match="format version 99"):
        RunRecord.load(tmp_path / "v99.pt")
    (tmp_path / "corrupt.pt").write_bytes(path.read_bytes()[:100])
    with pytest.raises(RunError, match="corrupt"):
        RunRecord.load(tmp_path / "corrupt.pt")
    with pytest.raises(RunError, match="no checkpoint"):
        RunRecord.load(tmp_path / "missing")


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


# --- the locks ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"model": "dnn"}, "model 'dnn'"),
        ({"representation": "b"}, "representation 'b'"),
        ({"preset": "paper"}, "preset 'paper'"),
        ({"seed": 5}, "seed 5"),
        ({"split_seed": 2}, "split_seed 2"),
        ({"lr": 0.5}, "lr 0.5"),
    ],
)
def test_resume_with_other_settings_is_refused_naming_them(small_csv, tmp_path, change, named):
    _train(small_csv, tmp_path / "run", steps=2)
    before = (tmp_path / "run" / CHECKPOINT).read_bytes()
    asked = {"model": "cgan", "representation": "bp", **change}
    model, representation = asked.pop("model"), asked.pop("representation")
    with pytest.raises(TrainError, match="cannot resume") as info:
        train(model, representation, tmp_path / "run", resume=True, steps=4, progress=False, **asked)
    assert named in str(info.value)
    assert (tmp_path / "run" / CHECKPOINT).read_bytes() == before


def test_resume_on_another_csv_is_refused(small_csv, tmp_path):
    _train(small_csv, tmp_path / "run", steps=2)
    other = tmp_path / "other.csv"
    other.write_text(small_csv.read_text())
    with pytest.raises(TrainError, match="other.csv"):
        train(
            "cgan", "bp", tmp_path / "run", data=DataSource(str(other)), resume=True, steps=4, progress=False
        )
    with pytest.raises(TrainError, match="property_column|the bundled MP set|mine"):
        train("cgan", "bp", tmp_path / "run", data=DataSource(), resume=True, steps=4, progress=False)


def test_foreign_files_are_not_overwritten_without_force(small_csv, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    with pytest.raises(TrainError, match="notes.txt"):
        _train(small_csv, tmp_path / "run", steps=2)
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"


def test_torn_last_log_line_is_tolerated_on_resume(small_csv, tmp_path):
    _train(small_csv, tmp_path / "run", steps=4)
    with (tmp_path / "run" / "losses.jsonl").open("a") as log:
        log.write('{"step": 6, "elapsed_s": 1.0, "g')  # power cut mid-line
    train("cgan", "bp", tmp_path / "run", resume=True, steps=6, progress=False)
    lines = (tmp_path / "run" / "losses.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [2, 4, 6]


def test_relative_csv_path_is_stored_absolute(small_csv, tmp_path, monkeypatch):
    monkeypatch.chdir(small_csv.parent)
    train("dnn", "b", tmp_path / "run", data=DataSource(small_csv.name), compile=False, batch_size=64,
          steps=1, progress=False)  # fmt: skip
    monkeypatch.chdir(tmp_path)
    record = RunRecord.load(tmp_path / "run")
    assert record.data.csv == str(small_csv)
    assert len(record.load_split().train) > 0  # reloads from another folder


def test_single_composition_csv_says_what_is_wrong(write_csv, tmp_path):
    csv = write_csv("composition,property\nFe,0.0\nFe2,0.1\nFe3,0.2\n")
    with pytest.raises(DataError, match="1 usable composition.*2 duplicate.*at least 2 distinct"):
        train("dnn", "b", tmp_path / "run", data=DataSource(str(csv)), steps=1, progress=False)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("seed", 1180591620717411303424, "seed must be an integer between 0 and"),
        ("seed", -1, "seed must be an integer between 0 and"),
        ("split_seed", 2**64, "split_seed must be an integer between 0 and"),
        ("steps", 0, "steps must be an integer between 1 and"),
        ("steps", 10**30, "steps must be an integer between 1 and"),
    ],
)
def test_out_of_range_integers_are_refused(tmp_path, option, value, message):
    with pytest.raises(InputError, match=message):
        train("dnn", "b", tmp_path / "run", **{option: value})


# --- the surrogate ensemble ---------------------------------------------------------------------------------


def test_surrogate_trains_resumes_exactly_and_calibrates(small_csv, tmp_path):
    from stoichgen.predict import Surrogate

    whole = _train(small_csv, tmp_path / "whole", "surrogate", steps=8, members=3)
    _train(small_csv, tmp_path / "parts", "surrogate", steps=4, members=3)
    train("surrogate", "bp", tmp_path / "parts", resume=True, steps=8, progress=False)
    a, b = _weights(tmp_path / "whole"), _weights(tmp_path / "parts")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert len(whole.model.members) == 3
    surrogate = Surrogate.from_run(tmp_path / "whole")
    mean, spread = surrogate.predict_formulas_with_spread(["NaCl", "Fe2O3"])
    assert mean.shape == spread.shape == (2,) and (spread > 0).all()
    assert float(surrogate.model.spread_scale) != 1.0  # fitted on the calibration rows


def test_surrogate_members_see_different_bootstrap_rows(small_csv, tmp_path):
    result = _train(small_csv, tmp_path / "run", "surrogate", steps=3, members=2)
    first, second = result.model.members
    assert not torch.equal(first[0].weight, second[0].weight)
