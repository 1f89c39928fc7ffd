from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from stoichgen.errors import ReproduceError
from stoichgen.options import PRESETS
from stoichgen.paper import Plan, reproduce
from stoichgen.paper.pieces import pieces
from stoichgen.paper.plan import run_specs

# the tiny plan and its report directory (tiny_plan, report_dir): tests/conftest.py, shared with the
# command line's tests in tests/cli/test_runs.py


@pytest.mark.slow
def test_report_tables_figures_and_csv_are_written(report_dir, tiny_plan):
    text = (report_dir / "report.md").read_text()
    assert (
        "QUICK" in text and f"{len(pieces(tiny_plan))} of {len(pieces(tiny_plan))} evaluation pieces" in text
    )
    for heading in (
        "Table 1",
        "Table 2",
        "Table 3",
        "Table 4",
        "Table 5",
        "Table 6",
        "Figure 1A",
        "Figure 1B",
    ):
        assert f"## {heading}" in text
    # our CondGAN(x^bp) MAE in x^b space is the mean ± std of the two splits' stored pieces
    pieces_dir = report_dir / "results" / "table2"
    maes = [json.loads((pieces_dir / f"split-{s}" / "cgan-bp-b.json").read_text())["mae"] for s in (0, 1)]
    row = next(line for line in text.splitlines() if line.startswith("| CondGAN(x^bp) | x^b |"))
    assert f"| 0.39 ± 0.01 | {np.mean(maes):.2f} ± {np.std(maes):.2f} |" in row
    assert "pending" not in text
    for name in ("fig1a.png", "fig1b.png"):
        assert (report_dir / name).read_bytes()[:4] == b"\x89PNG"
    table2 = (report_dir / "table2.csv").read_text().splitlines()
    assert len(table2) == 1 + 2 * 6  # header + (6 model/space rows) x 2 splits
    for spec in run_specs(tiny_plan):
        assert (
            json.loads((report_dir / "runs" / spec.name / "config.json").read_text())["train"]["steps"] == 30
        )


@pytest.mark.slow
def test_rerun_skips_finished_work_and_redoes_only_what_is_missing(report_dir, tiny_plan):
    results = sorted((report_dir / "results").rglob("*.json"))
    assert len(results) == len(pieces(tiny_plan))
    before = {p: p.stat().st_mtime_ns for p in results}
    checkpoints = {p: p.stat().st_mtime_ns for p in (report_dir / "runs").rglob("checkpoint.pt")}
    messages: list[str] = []
    reproduce(tiny_plan, report_dir, log=messages.append)
    assert not any(m.startswith(("training", "resuming", "evaluated")) for m in messages)
    assert {p: p.stat().st_mtime_ns for p in results} == before
    assert {p: p.stat().st_mtime_ns for p in (report_dir / "runs").rglob("checkpoint.pt")} == checkpoints
    (report_dir / "results" / "table4" / "split-1" / "dnn-bp.json").unlink()
    messages.clear()
    reproduce(tiny_plan, report_dir, log=messages.append)
    assert [m for m in messages if m.startswith("evaluated")] == ["evaluated table4/split-1/dnn-bp"]


@pytest.mark.slow
def test_another_plan_in_the_same_directory_is_refused(report_dir):
    with pytest.raises(ReproduceError, match="another plan"):
        reproduce(Plan.quick_plan(), report_dir, log=lambda text: None)


@pytest.mark.slow
def test_runs_trained_under_another_default_are_refused(report_dir, monkeypatch, tiny_plan):
    changed = {**PRESETS[("cgan", "default")], "generator_ema": 0.5}
    monkeypatch.setitem(PRESETS, ("cgan", "default"), changed)
    before = {p: p.stat().st_mtime_ns for p in report_dir.rglob("*") if p.is_file()}
    with pytest.raises(ReproduceError, match=r"generator_ema.*another report directory \(out=DIR\)"):
        reproduce(tiny_plan, report_dir, log=lambda text: None)
    assert {p: p.stat().st_mtime_ns for p in report_dir.rglob("*") if p.is_file()} == before


def test_report_template_facts_come_from_code():
    from stoichgen.paper.report import report_template

    template = report_template()
    for typed in ("49,543", "5,506", "8.6 M", "(30, 60)"):
        assert typed not in template


@pytest.mark.slow
def test_training_in_parallel_gives_the_same_runs_and_numbers(report_dir, tmp_path, tiny_plan):
    """reproduce with two worker processes: the same weights as one after another, so the same report
    numbers (timings aside)."""
    import torch

    from stoichgen.run import RunRecord

    parallel = tmp_path / "parallel"
    reproduce(tiny_plan, parallel, log=lambda text: None, workers=2)
    for spec in run_specs(tiny_plan):
        ours = RunRecord.load(parallel / "runs" / spec.name).state_dict
        theirs = RunRecord.load(report_dir / "runs" / spec.name).state_dict
        assert ours.keys() == theirs.keys()
        assert all(torch.equal(ours[k], theirs[k]) for k in ours), spec.name
    tables = sorted(p.name for p in report_dir.glob("*.csv"))
    assert tables and tables == sorted(p.name for p in parallel.glob("*.csv"))
    for name in tables:
        a, b = pd.read_csv(report_dir / name), pd.read_csv(parallel / name)
        timing = [c for c in a.columns if "second" in c or c.endswith("_s")]
        pd.testing.assert_frame_equal(a.drop(columns=timing), b.drop(columns=timing))
