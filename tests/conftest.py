from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from stoichgen.data import load_mp_formation_energy


@pytest.fixture
def write_csv(tmp_path: Path):
    """Write a CSV from text and return its path."""

    def write(text: str, name: str = "data.csv") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


@pytest.fixture(scope="session")
def small_csv(tmp_path_factory):
    """600 real MP rows: enough for a 64-row batch after the split, fast to load."""
    frame = load_mp_formation_energy().frame.iloc[:600]
    path = tmp_path_factory.mktemp("data") / "small.csv"
    frame[["formula", "property"]].rename(columns={"formula": "composition"}).to_csv(path, index=False)
    return path


# --- a tiny trained run, shared by the pipeline's tests (tests/discover) and the CLI's (tests/cli) --------


@pytest.fixture(scope="session")
def train_small():
    """Train a tiny run on a CSV (one thread, no compile) and return its directory."""
    import torch

    from stoichgen.data import DataSource
    from stoichgen.train import train

    def train_small(small_csv, out, model="cgan", steps=20):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # a tiny model trains faster on one thread, and far faster on a busy machine
        try:
            train(
                model, "bp", out, data=DataSource(str(small_csv)), compile=False, batch_size=64, steps=steps,
                progress=False,
            )  # fmt: skip
        finally:
            torch.set_num_threads(threads)
        return out

    return train_small


@pytest.fixture(scope="session")
def run_dir(train_small, small_csv, tmp_path_factory):
    """A tiny CondGAN(x^bp), trained once per session: its users read it (and cache its reference there)."""
    return train_small(small_csv, tmp_path_factory.mktemp("runs") / "cgan")


@pytest.fixture(scope="session")
def gen(run_dir):
    from stoichgen.discover.pipeline import Generator

    return Generator.from_run(run_dir)


def formula_symbols(formula: str) -> set[str]:
    return set(re.findall(r"[A-Z][a-z]*", formula))


@dataclass(frozen=True)
class Constraint:
    """Generation keyword arguments and what they allow, for leak checks."""

    kwargs: dict
    allowed: frozenset[str]
    required: str
    excluded: str
    max_elements: int

    def cli(self) -> list[str]:
        k = self.kwargs
        return ["--elements", k["elements"], "--require", k["require"], "--exclude", k["exclude"],
                "--max-elements", str(k["max_elements"]), "--threshold", str(k["threshold"])]  # fmt: skip

    def assert_no_leaks(self, df) -> None:
        for column in ("formula", "composition", "raw_composition"):
            symbols = df[column].map(formula_symbols)
            assert symbols.map(lambda s: bool(s) and s <= self.allowed).all(), column
            assert symbols.map(lambda s: self.required in s and self.excluded not in s).all()
            assert (symbols.map(len) <= self.max_elements).all(), column
        assert (df["n_elements"] <= self.max_elements).all()


@pytest.fixture(scope="session")
def constraint(gen):
    """Constraints that bite on the tiny model, whatever its exact weights (training may change).

    A barely trained model puts most elements at similar raw values, so at the paper's TH each row holds
    nearly every element. At a higher TH chosen here, several elements pass in 15-85 % of samples each:
    element sets vary, ``require`` and ``max_elements`` reject many draws, and one frequent element listed
    in ``elements`` is also excluded, so only masking keeps it out.
    """
    import numpy as np

    vocab = gen.vocabulary
    x = gen.sampler.sample(-2.0, 2000, seed=99)[:, : len(vocab)]
    for threshold in np.arange(0.05, 0.95, 0.05).round(2):
        p = (x >= threshold).mean(axis=0)
        varied = [int(i) for i in np.argsort(-p, kind="stable") if 0.15 <= p[i] <= 0.85]
        if len(varied) >= 6:
            break
    else:
        raise AssertionError("the tiny model's elements no longer vary; adapt this fixture")
    chosen = varied[:8]
    required, excluded = chosen[0], chosen[1]
    kept = [i for i in chosen if i != excluded]
    present = x[:, kept] >= threshold
    count, has_required = present.sum(axis=1), present[:, kept.index(required)]
    max_elements = 1
    while ((count <= max_elements) & has_required).mean() < 0.1:
        max_elements += 1
    symbols = vocab.symbols
    kwargs = {
        "elements": ",".join(symbols[i] for i in chosen),
        "require": symbols[required],
        "exclude": symbols[excluded],
        "max_elements": max_elements,
        "threshold": float(threshold),
    }
    allowed = frozenset(symbols[i] for i in kept)
    return Constraint(kwargs, allowed, symbols[required], symbols[excluded], max_elements)


# --- a tiny paper reproduction, shared by tests/paper and the CLI's tests (tests/cli) ----------------------


@pytest.fixture(scope="session")
def tiny_plan():
    from stoichgen.paper import Plan

    return Plan(
        quick=True,
        split_seeds=(0, 1),
        steps=(("cgan", 30), ("cvae", 30), ("dnn", 30)),
        compile=False,
        n_targets=3,
        n_samples=8,
        n_quality_targets=2,
        extrapolation_step=1.5,
    )


@pytest.fixture(scope="session")
def report_dir(tiny_plan, tmp_path_factory):
    """The tiny plan reproduced once per session (slow tests only)."""
    from stoichgen.paper import reproduce

    out = tmp_path_factory.mktemp("reproduce")
    reproduce(tiny_plan, out, log=lambda text: None)
    return out


@pytest.fixture(scope="session")
def tiny_runs(small_csv, tmp_path_factory):
    """A CondGAN and two DNNs (split seeds 0 and 1) on x^b, three steps each: for `evaluate`."""
    from stoichgen.data import DataSource
    from stoichgen.train import train

    def run(out, model, **kw):
        return train(model, "b", out, data=DataSource(str(small_csv)), compile=False, batch_size=64, steps=3,
                     progress=False, **kw).run_dir  # fmt: skip

    root = tmp_path_factory.mktemp("runs")
    return {
        "cgan": run(root / "cgan", "cgan"),
        "dnn": run(root / "dnn", "dnn"),
        "dnn_other_split": run(root / "dnn1", "dnn", split_seed=1),
    }
