"""The guided search: guided rows are valid, constrained, repeatable (its space: tests/space)."""

from __future__ import annotations

import re

import pytest
from smact.screening import smact_validity

import stoichgen
from stoichgen.errors import GenerateError


@pytest.fixture(scope="module")
def generator():
    return stoichgen.Generator.default()


CONSTRAINTS = [
    {},
    {"elements": "Li,Na,Mg,Mn,Fe,Co,Ni,O,S,F", "require": "O"},
    {"exclude": "O,Pb,Hg,Cd,Tl", "max_elements": 3},
    {"require": "Li,P", "max_elements": 4},
]


@pytest.mark.parametrize(
    "constraint", CONSTRAINTS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "none"
)
def test_guided_rows_are_valid_and_never_leak(generator, constraint):
    df = generator.generate([-2.5, -1.0], n=256, seed=3, **constraint)
    assert len(df) == 512
    # independent of the code's own flags: SMACT itself on every integer formula
    assert all(smact_validity(f) for f in df["formula"])
    assert (df["charge_neutral"] | df["intermetallic"]).all()
    assert not df.duplicated(["target", "formula"]).any() and df["not_in_training"].all()
    allowed = set(constraint.get("elements", "").split(",")) - {""}
    banned = set(constraint.get("exclude", "").split(",")) - {""}
    required = set(constraint.get("require", "").split(",")) - {""}
    for formula in df["formula"]:
        symbols = set(re.findall(r"[A-Z][a-z]?", formula))
        assert not allowed or symbols <= allowed, formula
        assert not symbols & banned, formula
        assert required <= symbols, formula
        assert len(symbols) <= constraint.get("max_elements", 4)
    assert (df.groupby("target")["rank"].apply(lambda r: list(r) == list(range(1, 257)))).all()
    assert (df.groupby("target")["score"].apply(lambda s: s.is_monotonic_increasing)).all()


def test_realistic_sizes_and_hits_by_the_surrogate(generator):
    df = generator.generate(-2.0, n=256, seed=0)
    assert df["n_atoms"].median() <= 20 and df["n_atoms"].max() <= 20
    assert abs(df["n_elements"].mean() - 3.36) <= 0.5
    assert (df["predicted_property"] - (-2.0)).abs().median() < 0.05  # the surrogate's own view


def test_same_seed_same_rows(generator):
    a = generator.generate(-1.5, n=64, seed=5)
    b = generator.generate(-1.5, n=64, seed=5)
    assert a.equals(b)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"balance": "exact"}, "balance applies to method 'paper' only"),
        ({"threshold": 0.1, "unique": True}, "threshold applies to method 'paper' only"),
        ({"objective": "stability", "method": "paper"}, "objective applies to method 'guided' only"),
        ({"colour": "red"}, "unknown option 'colour'"),
        ({"method": "magic"}, "unknown method 'magic'"),
        ({"require": "O", "exclude": "O"}, "both required and excluded"),
        ({"max_atoms": 31}, "max_atoms must be an integer between 2 and 30"),
    ],
)
def test_bad_guided_requests(generator, kwargs, message):
    with pytest.raises(
        GenerateError if "max_atoms" not in kwargs else stoichgen.StoichgenError, match=message
    ):
        generator.generate(-2.0, n=4, **kwargs)


def test_include_known_lets_training_formulas_through(generator):
    df = generator.generate(-0.01, n=128, seed=1, include_known=True, elements="Cu,Zn,Al,Ni")
    known = df[~df["not_in_training"]]
    assert len(known) > 0
    assert set(known["formula"]) <= set(generator.reference.formulas)  # a training formula
    assert not set(df.loc[df["not_in_training"], "formula"]) & set(generator.reference.formulas)
    assert not known["novel"].any()  # a training formula is a known compound


def test_substitutes_do_not_depend_on_the_hash_seed():
    """pymatgen keeps its species in a set; the search must not inherit its order across processes."""
    import os
    import subprocess
    import sys

    code = "from stoichgen.space.score import substitutes as s; print([s(e) for e in ('Na', 'Fe', 'O')])"
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2", "3")
    }  # fmt: skip
    assert len(outputs) == 1
