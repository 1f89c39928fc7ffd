"""`stoichgen generate` and `stoichgen hull` from the command line (src/stoichgen/cli/discovery.py).

The API under them is tested in tests/discover and tests/chem; the tiny trained run and its constraint
are the shared fixtures of tests/conftest.py.
"""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
import torch

from stoichgen.cli import main
from stoichgen.discover import pipeline as pipeline_module
from stoichgen.run import CHECKPOINT, bundled_run_dir
from stoichgen.schema import NAMES as COLUMNS

# --- generate, the paper method on the tiny run (its API: tests/discover/test_pipeline.py) ---------------


def _cli(run_dir, constraint, *extra):
    return ["generate", "--model", str(run_dir), "--method", "paper", "--target", "-1.5", "-n", "12",
            *constraint.cli(), *extra]  # fmt: skip


def test_cli_writes_csv_and_json(run_dir, constraint, tmp_path, capsys):
    assert main(_cli(run_dir, constraint, "-o", str(tmp_path / "out.csv"))) == 0
    err = capsys.readouterr().err
    assert "generated 12 compositions" in err and "redrawn" in err and "wrote 12 rows" in err
    df = pd.read_csv(tmp_path / "out.csv")
    assert list(df.columns) == list(COLUMNS) and len(df) == 12
    constraint.assert_no_leaks(df)
    assert (
        main(_cli(run_dir, constraint, "-o", str(tmp_path / "out.json"), "--balance", "exact", "--unique"))
        == 0
    )
    records = json.loads((tmp_path / "out.json").read_text())
    assert 0 < len(records) <= 12 and len({r["formula"] for r in records}) == len(records)


def test_cli_prints_a_table_without_output(run_dir, constraint, capsys):
    assert main(_cli(run_dir, constraint, "-n", "3")) == 0
    out = capsys.readouterr().out
    assert "formula" in out and "nearest_formula" in out and len(out.strip().splitlines()) == 4


def test_cli_refuses_existing_output_without_force(run_dir, constraint, tmp_path, capsys):
    out = tmp_path / "out.csv"
    out.write_text("keep me\n")
    assert main(_cli(run_dir, constraint, "-o", str(out))) == 2
    assert "exists; overwrite it with --force" in capsys.readouterr().err
    assert out.read_text() == "keep me\n"
    assert main(_cli(run_dir, constraint, "-o", str(out), "--force")) == 0
    assert len(pd.read_csv(out)) == 12


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--elements", "Na,Xx"], "unknown element symbol 'Xx'"),
        (["--require", "U"], "U not in the model's vocabulary"),
        (["--require", "O", "--exclude", "O", "--elements", "O"], "O both required and excluded"),
        (["--target", "nan"], "not a finite number"),
        (["-o", "out.txt"], "unknown format '.txt'"),
    ],
)
def test_cli_bad_input_exits_2(run_dir, constraint, capsys, extra, message):
    assert main(_cli(run_dir, constraint, *extra)) == 2
    assert re.search(message, capsys.readouterr().err)


def test_cli_missing_model_and_no_bundled_model(tmp_path, capsys, monkeypatch):
    assert main(["generate", "--model", str(tmp_path / "nope"), "--target", "-2"]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    monkeypatch.setattr(pipeline_module, "bundled_run_dir", lambda name: tmp_path / "none")
    assert main(["generate", "--target", "-2"]) == 2
    assert "no bundled default model; give a run directory (--model RUN_DIR)" in capsys.readouterr().err


def test_cli_non_numeric_target_and_extrapolation(run_dir, constraint, capsys):
    with pytest.raises(SystemExit) as info:
        main(["generate", "--model", str(run_dir), "--target", "abc"])
    assert info.value.code == 2
    capsys.readouterr()
    args = _cli(run_dir, constraint)
    args[args.index("--target") + 1] = "40"
    assert main(args) == 0
    assert "warning: target 40 is outside" in capsys.readouterr().err


def test_bundled_default_model_generates_from_the_command_line(tmp_path):
    """`stoichgen generate --target -2.0` after install: the shipped CondGAN(x^bp), no --model."""
    out = tmp_path / "out.csv"
    assert main(["generate", "--target", "-2.0", "-n", "16", "-o", str(out)]) == 0
    assert len(pd.read_csv(out)) == 16


def test_cli_says_what_is_wrong(tmp_path, capsys):
    """A hand-edited checkpoint (tests/test_run.py edits it many more ways) is named, not a traceback."""
    payload = torch.load(bundled_run_dir("cgan-bp") / CHECKPOINT, weights_only=True)
    payload["state_dict"].pop("critic.score.bias")
    run = tmp_path / "run"
    run.mkdir()
    torch.save(payload, run / CHECKPOINT)
    assert main(["generate", "--model", str(run), "--target", "-2", "-n", "2"]) == 2
    err = capsys.readouterr().err
    assert "not a valid stoichgen run" in err and "critic.score.bias" in err and "Traceback" not in err


# --- the locks -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "flag", "limit"),
    [
        (["-n", "10000000"], "-n", "100,000"),
        (["-n", "0"], "-n", "100,000"),
        (["--balance", "exact", "--max-atoms", "300"], "--max-atoms", "30"),
        (["--seed", "1180591620717411303424"], "--seed", "9,223,372,036,854,775,807"),
        (["--max-iterations", "0"], "--max-iterations", "100,000"),
        (["--max-elements", "0"], "--max-elements", "118"),
    ],
)
def test_cli_out_of_range_numbers_refused_before_work(run_dir, capsys, extra, flag, limit):
    with pytest.raises(SystemExit) as info:
        main(["generate", "--model", str(run_dir), "--method", "paper", "--target", "-2", *extra])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert flag in err and limit in err and "Traceback" not in err


def test_repeated_targets_are_all_kept(run_dir, capsys):
    args = ["generate", "--model", str(run_dir), "--method", "paper", "--target", "-2", "--target", "-1"]
    assert main([*args, "-n", "3", "--balance", "none"]) == 0
    out = capsys.readouterr().out
    assert out.count("-2.000") == 3 and out.count("-1.000") == 3


# --- generate, the guided search on the bundled runs (its API: tests/discover/test_search.py) ---------------


def test_cli_guided_prints_ranked_rows(capsys):
    assert main(["generate", "--target", "-2.0", "-n", "5", "--require", "O"]) == 0
    captured = capsys.readouterr()
    assert "guided search" in captured.err and "score" in captured.out and "uncertainty" in captured.out
    assert main(["generate", "--target", "-2.0", "-n", "5", "--balance", "exact"]) == 2
    assert "applies to method 'paper' only" in capsys.readouterr().err


def test_cli_stability_objective_needs_no_target():
    """The command-line end of test_stability_objective_ranks_by_predicted_e_above_hull (tests/chem)."""
    assert main(["generate", "--objective", "stability", "-n", "3", "--elements", "Li,Co,O"]) == 0
    assert main(["generate", "-n", "3"]) == 2


# --- hull (its API: tests/chem/test_hull.py) ---------------------------------------------------------------


def test_cli_hull(tmp_path, capsys):
    csv = tmp_path / "candidates.csv"
    csv.write_text("formula,predicted_property\nLi2MnO3,-2.0\nLiMn2O4,-1.9\nLi3MnO4,abc\n")
    out = tmp_path / "hull.csv"
    png = tmp_path / "hull.png"
    assert main(["hull", str(csv), "-o", str(out), "--plot", str(png)]) == 0
    err = capsys.readouterr().err
    assert "row 4: energy 'abc' is not a number" in err
    frame = pd.read_csv(out, keep_default_na=False)
    assert list(frame.columns)[-4:] == ["e_above_hull", "decomposition", "n_known", "hull_error"]
    assert frame["n_known"][0] > 10 and png.read_bytes()[:4] == b"\x89PNG"
    assert main(["hull", str(tmp_path / "missing.csv")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["hull", str(csv), "--property-column", "energy"]) == 2
    assert "missing column 'energy'" in capsys.readouterr().err


# --- the range objective and --reference (their API: tests/discover/test_range.py, test_reference.py) -----

TINY = "composition,property\nLi2O,-2.6\nFe2O3,-2.2\nLiFeO2,-2.5\nFeO,-1.9\nLi2O2,-1.9\n"


def test_cli_target_range_writes_p_in_range(tmp_path, capsys):
    out = tmp_path / "range.csv"
    argv = ["generate", "--target-min", "-2.2", "--target-max", "-1.8", "-n", "4", "--elements", "Li,Fe,P,O"]
    assert main([*argv, "-o", str(out)]) == 0
    assert "1 - p_in_range [-2.2, -1.8]" in capsys.readouterr().err
    frame = pd.read_csv(out)
    assert frame["p_in_range"].between(0, 1).all() and frame["score"].is_monotonic_increasing


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--target-min", "-1.8", "--target-max", "-2.2"], "minimum -1.8 must be below the maximum -2.2"),
        (["--target-min", "-2", "--target-max", "-2"], "must be below"),
        (["--target-min", "-2.2", "--target-max", "-1.8", "--target", "-2"], "not both"),
        (["--target-max", "-1.8", "--objective", "stability"], "not 'stability'"),
        (["--target-max", "-1.8", "--method", "paper"], "applies to method 'guided' only"),
    ],
)
def test_cli_bad_ranges_exit_2_and_write_nothing(tmp_path, capsys, extra, words):
    out = tmp_path / "never.csv"
    assert main(["generate", "-n", "2", *extra, "-o", str(out)]) == 2
    assert words in capsys.readouterr().err and not out.exists()


def test_cli_generate_reference_is_the_hull(tmp_path, capsys):
    from stoichgen.chem.hull import Hull

    reference = tmp_path / "tiny.csv"
    reference.write_text(TINY)
    out = tmp_path / "own.csv"
    argv = ["generate", "--target", "-1.8", "-n", "4", "--elements", "Li,Fe,O", "--reference", str(reference)]
    assert main([*argv, "-o", str(out)]) == 0
    frame = pd.read_csv(out)
    direct = Hull.from_formulas(["Li2O", "Fe2O3", "LiFeO2", "FeO", "Li2O2"], [-2.6, -2.2, -2.5, -1.9, -1.9])
    for formula, energy, above in zip(frame["formula"], frame["predicted_property"], frame["e_above_hull"],
                                      strict=True):  # fmt: skip
        assert above == pytest.approx(direct.query(formula, energy).e_above_hull, abs=1e-6)


def test_cli_bad_references_exit_2_name_each_row_and_write_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("composition,property\nLi2O,-2.6\nFe2O3,nan\nXx2O,-1\n")
    good = tmp_path / "tiny.csv"
    good.write_text(TINY)
    out = tmp_path / "never.csv"
    base = ["generate", "--target", "-1.8", "-n", "2", "-o", str(out)]
    assert main([*base, "--elements", "Li,Fe,O", "--reference", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "row 3: 'Fe2O3': energy 'nan' is not a finite number" in err and "row 4: 'Xx2O'" in err
    assert main([*base, "--elements", "Li,Mn,O", "--reference", str(good)]) == 2
    assert "holds no compound of Mn" in capsys.readouterr().err
    assert main([*base, "--method", "paper", "--reference", str(good)]) == 2
    assert "--reference applies to method 'guided' only" in capsys.readouterr().err
    assert not out.exists()
    # hull reads the reference the same way
    candidates = tmp_path / "candidates.csv"
    candidates.write_text("formula,predicted_property\nLi5FeO4,-2.0\n")
    assert main(["hull", str(candidates), "--reference", str(bad), "-o", str(out)]) == 2
    assert "row 3: 'Fe2O3': energy 'nan' is not a finite number" in capsys.readouterr().err
    assert not out.exists()
    assert main(["hull", str(candidates), "--reference", str(good)]) == 0
    assert "of 5 known compounds" in capsys.readouterr().err


# --- output paths refused before any work, one line, exit 2 (issue 25, rows 3 and 4) -----------------------


@pytest.mark.parametrize("where", ["/sys/x", "/proc/x"])
@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".json"])
def test_unwritable_outputs_are_refused_before_any_work(tmp_path, capsys, monkeypatch, where, suffix):
    csv = tmp_path / "candidates.csv"
    csv.write_text("formula,predicted_property\nLi2MnO3,-2.0\n")
    monkeypatch.setattr(pipeline_module.Generator, "default", lambda *a, **k: pytest.fail("work began"))
    for argv in (["hull", str(csv)], ["generate", "--target", "-2", "-n", "2"],
                 ["screen", "--elements", "Li,O", "--max-atoms", "4"]):  # fmt: skip
        if argv[0] == "screen" and suffix != ".parquet":
            continue  # the screen writes Parquet only (refused by name elsewhere)
        assert main([*argv, "-o", where + suffix]) == 2, argv
        err = capsys.readouterr().err
        assert f"'{where}{suffix}': cannot write in" in err and "Traceback" not in err, argv


@pytest.mark.parametrize(
    ("plot", "words"),
    [
        ("missing_dir/x.png", "directory"),
        ("x.xyz", "unknown format '.xyz'; use .png, .pdf or .svg"),
        ("noext", "unknown format '(no suffix)'"),
        ("/sys/x.png", "cannot write in '/sys'"),
    ],
)
def test_hull_plot_path_is_checked_first(tmp_path, capsys, monkeypatch, plot, words):
    monkeypatch.chdir(tmp_path)
    csv = tmp_path / "candidates.csv"
    csv.write_text("formula,predicted_property\nLi2MnO3,-2.0\n")
    assert main(["hull", str(csv), "--plot", plot, "-o", "out.csv"]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["candidates.csv"]  # nothing written


def test_hull_keeps_the_table_when_the_picture_cannot_be_drawn(tmp_path, capsys):
    csv = tmp_path / "candidates.csv"
    csv.write_text("formula,predicted_property\nLi2O,-2.0\n")  # a binary system: no picture
    out, svg = tmp_path / "out.csv", tmp_path / "x.svg"
    assert main(["hull", str(csv), "--plot", str(svg), "-o", str(out)]) == 2
    assert "ternary or quaternary" in capsys.readouterr().err
    assert out.exists() and not svg.exists()


def test_hull_plot_prints_the_written_path_and_no_matplotlib_noise(tmp_path, capsys, caplog):
    csv = tmp_path / "candidates.csv"
    csv.write_text("formula,predicted_property\nLi2MnO3,-2.0\n")
    svg = tmp_path / "x.svg"
    assert main(["hull", str(csv), "--plot", str(svg)]) == 0
    err = capsys.readouterr().err
    assert f"plot: {svg}" in err and svg.read_text().lstrip().startswith("<?xml")
    assert "Ignoring fixed" not in err + caplog.text


# --- the stability objective: one rule with the screen, no "nan" target (issue 25, rows 12 and 16) ---------


def test_stability_with_a_target_is_refused_everywhere(tmp_path, capsys):
    from fastapi.testclient import TestClient

    from stoichgen.discover.pipeline import Generator
    from stoichgen.errors import GenerateError
    from stoichgen.web.app import create_app

    out = tmp_path / "never.csv"
    assert main(["generate", "--objective", "stability", "--target", "-2", "-n", "2", "-o", str(out)]) == 2
    assert "not both" in capsys.readouterr().err and not out.exists()
    with pytest.raises(GenerateError, match="not both") as caught:
        Generator.default().generate([-2.0, -1.0], n=2, objective="stability")
    assert caught.value.field == "objective"
    answer = TestClient(create_app()).post("/api/generate", json={"target": -2, "objective": "stability"})
    assert answer.status_code == 422 and answer.json()["field"] == "objective"


def test_a_stability_search_short_of_rows_names_no_nan_target(capsys):
    argv = ["generate", "--objective", "stability", "--max-e-hull", "0", "--elements", "Li,O", "--max-atoms",
            "4", "-n", "20"]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "warning: the search space" in err and "nan" not in err.lower()


@pytest.mark.parametrize("suffix", [".parquet", ".json", ".csv"])
def test_hull_reads_every_format_generate_writes(tmp_path, capsys, suffix):
    """Issue 25, row 14: `hull out.parquet` / `hull out.json` failed ('utf-8' codec..., 'Expected 1
    fields'): hull reads the tables generate writes, with the same numbers whatever the format."""
    written = tmp_path / f"candidates{suffix}"
    argv = ["generate", "--target", "-2", "-n", "3", "--elements", "Li,Mn,O", "-o", str(written)]
    assert main(argv) == 0
    out = tmp_path / "placed.csv"
    assert main(["hull", str(written), "-o", str(out)]) == 0
    assert "3 of 3 rows on the hull" in capsys.readouterr().err
    frame = pd.read_csv(out, keep_default_na=False)
    read = {".parquet": pd.read_parquet, ".json": pd.read_json, ".csv": pd.read_csv}[suffix]
    generated = read(written)
    assert (frame["hull_error"] == "").all()
    # the hull command places each row at its predicted energy, as generate did
    assert frame["e_above_hull"].round(4).tolist() == generated["e_above_hull"].round(4).tolist()


@pytest.mark.parametrize(("content", "suffix", "words"), [
    (b"\xf8junk", ".parquet", "cannot be read as Parquet"),
    (b'{"formula": "Li2O"}', ".json", "cannot be read as JSON records"),
    (b"[1, 2", ".json", "cannot be read as JSON records"),
])  # fmt: skip
def test_hull_names_an_unreadable_table(tmp_path, capsys, content, suffix, words):
    bad = tmp_path / f"bad{suffix}"
    bad.write_bytes(content)
    assert main(["hull", str(bad)]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1


# --- serve: the address checked before the "serving" line (issue 25, row 13) -------------------------------


def test_serve_on_a_taken_port_or_unknown_host_says_so_first(capsys):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
        err = capsys.readouterr().err
        assert f"cannot listen on 127.0.0.1 port {port}" in err and "serving" not in err
    for host in ("nosuchhost.invalid", "256.1.1.1"):
        assert main(["serve", "--host", host, "--port", "8000"]) == 2
        err = capsys.readouterr().err
        assert f"host {host!r} cannot be resolved" in err and "serving" not in err, err
