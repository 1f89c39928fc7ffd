"""`stoichgen train`, `evaluate` and `reproduce` from the command line (src/stoichgen/cli/runs.py).

The API under them is tested in tests/test_train.py, tests/evaluate and tests/paper; the tiny runs and the
tiny reproduction are the shared fixtures of tests/conftest.py.
"""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from stoichgen.cli import main
from stoichgen.data import DataSource, element_descriptors, load_csv
from stoichgen.evaluate import runs as runs_module
from stoichgen.run import RunRecord
from stoichgen.train import train

# --- train (its API: tests/test_train.py) -------------------------------------------------------------------


def test_cli_train_in_process(small_csv, tmp_path, capsys):
    args = ["train", "--model", "dnn", "--repr", "b", "--csv", str(small_csv), "--steps", "3"]
    args += ["--out", str(tmp_path / "run"), "--no-compile", "--composition-column", "composition"]
    assert main(args) == 0
    assert "trained 3 steps" in capsys.readouterr().out
    assert main(args) == 2  # a run is there
    assert "holds a run; resume it (--resume) or overwrite it (--force)" in capsys.readouterr().err
    assert main([*args, "--resume", "--steps", "5"]) == 0
    assert RunRecord.load(tmp_path / "run").progress.step == 5
    with pytest.raises(SystemExit) as info:
        main(["train", "--model", "gan", "--repr", "b", "--out", str(tmp_path / "x")])
    assert info.value.code != 0


def test_cli_resume_names_each_conflict(small_csv, tmp_path, capsys):
    args = ["train", "--model", "dnn", "--repr", "b", "--csv", str(small_csv), "--steps", "2", "--no-compile"]
    assert main([*args, "--out", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    assert main(["train", "--model", "cgan", "--repr", "bp", "--out", str(tmp_path / "run"), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "model 'cgan'" in err and "representation 'bp'" in err and "Traceback" not in err


def test_run_dir_without_checkpoint_restarts_without_force(small_csv, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")  # as left by Ctrl-C before the first checkpoint
    (run / "losses.jsonl").write_text('{"step": 2}\n')
    args = ["train", "--model", "dnn", "--repr", "b", "--csv", str(small_csv), "--steps", "2", "--no-compile"]
    assert main([*args, "--out", str(run), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "nothing to resume" in err and "without --resume" in err
    assert main([*args, "--out", str(run)]) == 0  # the advice works
    assert RunRecord.load(run).progress.step == 2


@pytest.mark.parametrize("flag", ["--seed", "--split-seed", "--steps"])
def test_cli_out_of_range_integers_exit_cleanly(tmp_path, capsys, flag):
    with pytest.raises(SystemExit) as info:
        main(
            [
                "train",
                "--model",
                "dnn",
                "--repr",
                "b",
                "--out",
                str(tmp_path / "r"),
                flag,
                "1180591620717411303424",
            ]
        )
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "outside" in err and flag in err and "Traceback" not in err


# --- evaluate (its API: tests/evaluate/test_runs.py) --------------------------------------------------------


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


@pytest.mark.parametrize("name", ["out.xlsx", "missing/out.csv", "exists.csv"])
def test_output_is_checked_before_the_evaluation(tiny_runs, tmp_path, capsys, monkeypatch, name):
    (tmp_path / "exists.csv").write_text("kept")
    monkeypatch.setattr(runs_module, "evaluate_run", lambda *a, **k: pytest.fail("evaluated first"))
    monkeypatch.setattr("stoichgen.cli.runs.evaluate_run", lambda *a, **k: pytest.fail("evaluated first"))
    assert main(["evaluate", str(tiny_runs["cgan"]), "--targets=-1.0", "-o", str(tmp_path / name)]) == 2
    assert "output" in capsys.readouterr().err
    assert (tmp_path / "exists.csv").read_text() == "kept"


def test_evaluate_prints_surrogate_calibration(small_csv, tmp_path, capsys):
    train(
        "surrogate", "bp", tmp_path / "run", data=DataSource(str(small_csv)), compile=False, batch_size=64,
        log_every=2, progress=False, steps=20, members=2,
    )  # fmt: skip
    assert main(["evaluate", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "within_1_spread" in out and "within_2_spread" in out and "surrogate on the test split" in out


@pytest.mark.slow
def test_evaluate_cli_on_a_run(report_dir, capsys, tmp_path):
    run = report_dir / "runs" / "split-0" / "cgan-bp"
    judge = report_dir / "runs" / "split-0" / "dnn-bp"
    output = tmp_path / "e.csv"
    assert (
        main(
            ["evaluate", str(run), "--targets=-2.0,-1.0", "-n", "4", "--judge", str(judge), "-o", str(output)]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "x^b" in out and "x^bp" in out and "Table 4" in out and "beyond the paper" in out
    table = pd.read_csv(output).set_index("metric")
    assert len(table) == 4  # Table 2 in x^b and x^bp, beyond the paper, Table 4
    beyond = table.loc["beyond the paper (generate --balance none)"]
    assert beyond["samples"] == 8 and 0 <= beyond["novelty"] <= 1 and np.isfinite(beyond["judge_mae"])
    with pytest.raises(SystemExit):
        main(["evaluate", str(run), "-n", "0"])
    assert main(["evaluate", str(run), "--targets", ","]) == 2
    assert main(["evaluate", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


# --- reproduce (its API: tests/paper/test_paper.py) ---------------------------------------------------------


@pytest.mark.slow
def test_reproduce_refuses_another_plan_in_the_same_directory(report_dir):
    """The command-line end of tests/paper's test_another_plan_in_the_same_directory_is_refused."""
    assert main(["reproduce", "--quick", "--out", str(report_dir)]) == 2


def test_out_that_is_a_file_is_refused(tmp_path, capsys):
    target = tmp_path / "report.md"
    target.write_text("keep me")
    assert main(["reproduce", "--quick", "--out", str(target)]) == 2
    assert "is not a directory" in capsys.readouterr().err and target.read_text() == "keep me"


def test_non_empty_out_it_did_not_create_is_refused(tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("keep me")
    assert main(["reproduce", "--quick", "--out", str(tmp_path)]) == 2
    assert "holds no reproduction" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--minutes", "0"], "minutes"),
        (["--minutes", "-1"], "minutes"),
        (["--csv", "TINY", "--steps", "2"], "fewer than one batch"),
        (["--csv", "MISSING", "--steps", "2"], "no such file"),
    ],
)
def test_train_refusing_bad_input_creates_nothing(tmp_path, capsys, extra, words):
    """Issue 25, row 18: a refused train left an empty RUN_DIR behind. And with --force over a run, the
    run's files stay when the new request is refused (bad input loses nothing already written)."""
    tiny = tmp_path / "tiny.csv"
    tiny.write_text("composition,property\nLi2O,-2.0\nFeO,-1.0\nNaCl,-2.1\n")
    paths = {"TINY": str(tiny), "MISSING": str(tmp_path / "missing.csv")}
    extra = [paths.get(a, a) for a in extra]
    out = tmp_path / "run"
    assert main(["train", "--model", "dnn", "--repr", "b", "--out", str(out), *extra]) == 2
    assert words in capsys.readouterr().err and not out.exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "checkpoint.pt").write_bytes(b"an earlier run")
    argv = ["train", "--model", "dnn", "--repr", "b", "--out", str(kept), "--force", *extra]
    assert main(argv) == 2
    assert (kept / "checkpoint.pt").read_bytes() == b"an earlier run"
