"""``stoichgen evaluate RUN_DIR``: one run on its own data and split, and what it refuses."""

from __future__ import annotations

import shutil

import pytest

from stoichgen.cli import main
from stoichgen.data import DataSource, element_descriptors, load_csv
from stoichgen.discover.pipeline import Generator
from stoichgen.errors import EvaluateError
from stoichgen.evaluate import runs as runs_module
from stoichgen.evaluate.runs import evaluate_run
from stoichgen.train import train


def _train(csv, out, model, **kw):
    return train(model, "b", out, data=DataSource(str(csv)), compile=False, batch_size=64, steps=3,
                 progress=False, **kw).run_dir  # fmt: skip


def test_evaluate_run_on_its_own_csv_and_after_the_csv_changed(small_csv, tmp_path, capsys):
    csv = tmp_path / "mine.csv"
    shutil.copy(small_csv, csv)
    run = tmp_path / "run"
    train("cgan", "b", run, data=DataSource(str(csv)), compile=False, batch_size=64, steps=5, progress=False)
    assert main(["evaluate", str(run), "--targets=-1.0", "-n", "8"]) == 0
    assert "Table 2" in capsys.readouterr().out
    absent = next(e for e in element_descriptors().index if e not in load_csv(csv).vocabulary)
    with csv.open("a") as handle:  # a new element changes the data's vocabulary under the model
        handle.write(f"{absent}O2,-0.5\n")
    assert main(["evaluate", str(run), "--targets=-1.0", "-n", "8"]) == 2
    assert "has changed since training" in capsys.readouterr().err


@pytest.fixture(scope="module")
def runs(small_csv, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {
        "cgan": _train(small_csv, root / "cgan", "cgan"),
        "dnn": _train(small_csv, root / "dnn", "dnn"),
        "dnn_other_split": _train(small_csv, root / "dnn1", "dnn", split_seed=1),
    }


def test_judge_must_be_a_predictor_on_the_same_split(runs):
    with pytest.raises(EvaluateError, match="a judge must be a property predictor"):
        evaluate_run(runs["cgan"], [-1.0], n=4, judge=runs["cgan"])
    with pytest.raises(EvaluateError, match="train the judge on the run's data and split"):
        evaluate_run(runs["cgan"], [-1.0], n=4, judge=runs["dnn_other_split"])
    table = evaluate_run(runs["cgan"], [-1.0], n=4, judge=runs["dnn"], generator_for=Generator)
    assert table["judge_mae"].notna().any()
    without = evaluate_run(runs["cgan"], [-1.0], n=4, judge=runs["dnn"])  # no pipeline: no quality row
    assert "judge_mae" not in without and len(without) == len(table) - 1


@pytest.mark.parametrize("name", ["out.xlsx", "missing/out.csv", "exists.csv"])
def test_output_is_checked_before_the_evaluation(runs, tmp_path, capsys, monkeypatch, name):
    (tmp_path / "exists.csv").write_text("kept")
    monkeypatch.setattr(runs_module, "evaluate_run", lambda *a, **k: pytest.fail("evaluated first"))
    monkeypatch.setattr("stoichgen.cli.runs.evaluate_run", lambda *a, **k: pytest.fail("evaluated first"))
    assert main(["evaluate", str(runs["cgan"]), "--targets=-1.0", "-o", str(tmp_path / name)]) == 2
    assert "output" in capsys.readouterr().err
    assert (tmp_path / "exists.csv").read_text() == "kept"
