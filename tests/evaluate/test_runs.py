"""``evaluate_run``: the judges it accepts (``stoichgen evaluate RUN_DIR``: tests/cli/test_runs.py)."""

from __future__ import annotations

import pytest

from stoichgen.discover.pipeline import Generator
from stoichgen.errors import EvaluateError
from stoichgen.evaluate.runs import evaluate_run

# tiny_runs (a CondGAN and two DNNs on x^b): tests/conftest.py, shared with tests/cli/test_runs.py


def test_judge_must_be_a_predictor_on_the_same_split(tiny_runs):
    with pytest.raises(EvaluateError, match="a judge must be a property predictor"):
        evaluate_run(tiny_runs["cgan"], [-1.0], n=4, judge=tiny_runs["cgan"])
    with pytest.raises(EvaluateError, match="train the judge on the run's data and split"):
        evaluate_run(tiny_runs["cgan"], [-1.0], n=4, judge=tiny_runs["dnn_other_split"])
    table = evaluate_run(tiny_runs["cgan"], [-1.0], n=4, judge=tiny_runs["dnn"], generator_for=Generator)
    assert table["judge_mae"].notna().any()
    # no pipeline: no quality row
    without = evaluate_run(tiny_runs["cgan"], [-1.0], n=4, judge=tiny_runs["dnn"])
    assert "judge_mae" not in without and len(without) == len(table) - 1
