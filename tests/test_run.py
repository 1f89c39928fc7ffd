"""The run record: the bundled runs load, and a hand-edited checkpoint is refused saying what is wrong."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from stoichgen.errors import RunError
from stoichgen.run import CHECKPOINT, FORMAT_VERSION, RunRecord, atomic_write_text, bundled_run_dir

BUNDLED = bundled_run_dir("cgan-bp")
REPRODUCTION = Path(__file__).resolve().parents[1] / "docs" / "reproduction" / "runs"


@pytest.fixture(scope="module")
def payload():
    return torch.load(BUNDLED / CHECKPOINT, weights_only=True)


def _edited(payload, tmp_path, edit) -> Path:
    changed = copy.deepcopy(payload)
    edit(changed)
    run = tmp_path / "run"
    run.mkdir()
    torch.save(changed, run / CHECKPOINT)
    return run


def _drop(key):
    return lambda p: p.pop(key)


def _set(key, value):
    return lambda p: p.__setitem__(key, value)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_drop("state_dict"), "missing state_dict"),
        (_drop("normaliser"), "missing normaliser"),
        (_set("format_version", 7), "format version 7; this stoichgen reads version 1"),
        (_set("model_class", "Transformer"), "unknown model class 'Transformer'"),
        (_set("representation", "xyz"), "representation 'xyz'"),
        (_set("vocabulary", ["H", "He"]), "takes 147 input columns, but 2 elements in x\\^bp make 60"),
        (_set("vocabulary", ["He", "H"] + ["Li"] * 87), "vocabulary"),
        (_set("normaliser", {"minimum": [0.0] * 3, "maximum": [1.0] * 3}), "normaliser has 3 columns"),
        (_set("normaliser", {"lo": [0.0]}), "normaliser"),
        (_set("property_normaliser", {"minimum": [1.0], "maximum": [float("nan")]}), "non-finite"),
        (lambda p: p["model_config"].update(x_dim=10), "takes 10 input columns"),
        (lambda p: p["model_config"].update(depth=3), "unknown fields \\['depth'\\]"),
        (lambda p: p["state_dict"].pop("critic.score.bias"), "weights do not fit"),
        (lambda p: p["state_dict"].update({"critic.score.bias": torch.zeros(3)}), "weights do not fit"),
        (_set("split", {"kind": "magic"}), "split"),
        (_set("progress", {"step": "many"}), "progress"),
        (_set("data", {"url": "http://x"}), "data source"),
    ],
)
def test_hand_edited_checkpoint_is_named_not_a_traceback(payload, tmp_path, edit, message):
    run = _edited(payload, tmp_path, edit)
    with pytest.raises(RunError, match="not a valid stoichgen run: .*" + message):
        RunRecord.load(run)


def test_round_trip_keeps_everything(tmp_path):
    record = RunRecord.load(BUNDLED)
    (tmp_path / "copy").mkdir()
    record.save(tmp_path / "copy")
    again = RunRecord.load(tmp_path / "copy")
    assert again.to_payload().keys() == record.to_payload().keys()
    assert again.vocabulary == record.vocabulary and again.split == record.split
    for name, tensor in record.state_dict.items():
        assert torch.equal(again.state_dict[name], tensor)


@pytest.mark.parametrize(
    "run",
    [BUNDLED, bundled_run_dir("cvae-bp"), bundled_run_dir("surrogate-bp"), *sorted(REPRODUCTION.glob("*/*"))],
    ids=lambda p: p.name,
)
def test_checkpoints_written_before_the_record_still_load(run):
    record = RunRecord.load(run)
    assert record.to_payload()["format_version"] == FORMAT_VERSION
    assert record.model() is not None


def test_a_checkpoint_written_on_a_gpu_loads_on_the_cpu(tmp_path, monkeypatch):
    """Every tensor of a run trained on CUDA is tagged ``cuda:0`` in its file; generation, evaluation,
    serve and screen read runs only through ``RunRecord.load``, which maps them to the CPU."""
    record = RunRecord.load(BUNDLED)
    (tmp_path / "gpu").mkdir()
    with monkeypatch.context() as patched:  # torch.save asks this where each storage lives
        patched.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        record.save(tmp_path / "gpu")
    if not torch.cuda.is_available():  # the file does say cuda: a plain load fails here
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(tmp_path / "gpu" / CHECKPOINT, weights_only=True)
    loaded = RunRecord.load(tmp_path / "gpu")
    assert all(t.device.type == "cpu" for t in loaded.state_dict.values())
    y, z = torch.full((3, 1), 0.5), torch.zeros(3, 10)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model().sample(y, z), record.model().sample(y, z), rtol=0, atol=0)


def test_runs_are_read_only_through_the_record():
    """No other module loads a checkpoint (so none can miss the map to the CPU)."""
    package = Path(__file__).resolve().parents[1] / "src" / "stoichgen"
    loaders = sorted(
        p.relative_to(package).as_posix() for p in package.rglob("*.py") if "torch.load(" in p.read_text()
    )
    assert loaders == ["run.py"]


def test_atomic_write_leaves_no_temporary_file(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "hello")
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


@pytest.mark.parametrize("junk", [b"i", b"not a checkpoint", b"PK\x03\x04" + bytes(60), bytes(range(256))])
def test_a_junk_checkpoint_is_named_without_torchs_meaningless_text(tmp_path, capsys, junk):
    """Issue 25, row 19: 'corrupt or not a stoichgen checkpoint: 105' (torch's text). Now a reason and
    what to do, the same from the API, `generate --model` and `serve --model`."""
    import re

    from stoichgen.cli import main

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / CHECKPOINT).write_bytes(junk)
    with pytest.raises(RunError) as caught:
        RunRecord.load(tmp_path / "run")
    message = str(caught.value)
    assert message.endswith("(torch cannot read it); train the run again, or give another run directory")
    assert not re.search(r": \d+$|: \S*Error", message)
    for argv in (["generate", "--model", str(tmp_path / "run"), "--target", "-2"],
                 ["serve", "--model", str(tmp_path / "run")]):  # fmt: skip
        assert main(argv) == 2
        assert "torch cannot read it" in capsys.readouterr().err
