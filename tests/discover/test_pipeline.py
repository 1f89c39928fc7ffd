from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
import pytest

from stoichgen.chem.composition import paper_string, parse_formula, threshold_fractions
from stoichgen.data import descriptor_matrix
from stoichgen.discover import pipeline as pipeline_module
from stoichgen.discover.pipeline import Generator
from stoichgen.discover.reference import REFERENCE, Reference, load_reference, write_reference
from stoichgen.errors import ExtrapolationWarning, GenerateError, GenerateWarning, RunError, StoichgenError
from stoichgen.io import write_table
from stoichgen.nearest import NearestIndex
from stoichgen.predict import Sampler
from stoichgen.run import CHECKPOINT, RunRecord, bundled_run_dir
from stoichgen.schema import NAMES as COLUMNS

# the tiny trained run and its fixtures (run_dir, gen, constraint, train_small): tests/conftest.py, shared
# with the command line's tests in tests/cli/test_discovery.py


@dataclass(frozen=True)
class ReplaySampler(Sampler):
    """The tiny model's sampler, but ``sample`` cycles through given x^b rows (x^p computed from them)."""

    rows: np.ndarray | None = None

    def sample(self, targets, n=256, seed=0):
        total = len(np.atleast_1d(targets)) * n
        x_b = np.tile(self.rows, (total // len(self.rows) + 1, 1))[:total]
        if self.representation == "b":
            return x_b
        return np.hstack([x_b, x_b @ descriptor_matrix(self.vocabulary)])


def replay(gen: Generator, compositions: list[dict[str, float]]) -> Generator:
    vocab = gen.vocabulary
    rows = np.zeros((len(compositions), len(vocab)))
    for row, composition in zip(rows, compositions, strict=True):
        for symbol, amount in composition.items():
            row[vocab.index(symbol)] = amount
    base = {f.name: getattr(gen.sampler, f.name) for f in fields(Sampler)}
    return Generator(ReplaySampler(**base, rows=rows), gen.run_dir, gen.reference)


NACL, FE2O3, NACL2 = {"Na": 0.5, "Cl": 0.5}, {"Fe": 0.4, "O": 0.6}, {"Na": 1 / 3, "Cl": 2 / 3}


def _symbols(formula: str) -> set[str]:
    return set(re.findall(r"[A-Z][a-z]*", formula))


# --- known answers ----------------------------------------------------------------------------------------


def test_known_neutral_and_smact_answers(gen):
    df = replay(gen, [NACL, FE2O3, NACL2]).generate(-2.0, n=3, balance="none", method="paper")
    assert list(df.columns) == list(COLUMNS)
    assert df["formula"].tolist() == ["NaCl", "Fe2O3", "NaCl2"]
    assert df["raw_composition"].tolist() == ["Na0.50Cl0.50", "O0.60Fe0.40", "Na0.33Cl0.67"]
    assert df["charge_neutral"].tolist() == [True, True, False]
    assert df["smact_valid"].tolist() == [True, True, False]
    assert df["valence_raw"].tolist() == pytest.approx([0.0, 0.0, 1 / 3], abs=1e-12)
    assert df["n_elements"].tolist() == [2, 2, 2]
    assert not df["unbalanceable"].any() and not df["balance_skipped"].any()
    assert df["predicted_property"].notna().all() and df["predicted_property_balanced"].notna().all()


def test_mh_balances_a_hand_made_unbalanced_vector(gen):
    df = replay(gen, [NACL2, {"Fe": 0.42, "O": 0.58}]).generate(-2.0, n=2, balance="mh", method="paper")
    assert df["valence_raw"].iloc[0] == pytest.approx(1 / 3)
    assert df["charge_neutral"].all()
    assert df["valence"].max() < 1e-3
    assert df["formula"].iloc[0] == "NaCl" and df["composition"].iloc[0] == "Na0.50Cl0.50"
    assert df["raw_composition"].iloc[0] == "Na0.33Cl0.67"  # before balancing
    assert (df["balance_iterations"] > 0).all()
    assert df["formula"].iloc[1] in {"Fe2O3", "FeO"}


def test_exact_balancing_returns_only_neutral_rows(gen, constraint):
    mixed = [{"Fe": 0.42, "O": 0.58}, NACL2, {"Na": 0.5, "K": 0.5}, {"Ti": 0.3, "O": 0.7}]
    df = replay(gen, mixed).generate(-2.0, n=4, balance="exact", method="paper")
    assert df["formula"].tolist() == ["Fe2O3", "NaCl", "KNa", "TiO2"]
    assert df["charge_neutral"].tolist() == [True, True, False, True]
    assert df["unbalanceable"].tolist() == [False, False, True, False]  # NaK: cations only
    # neutral_only: rows left not neutral are redrawn, so only neutral rows come back
    df = replay(gen, mixed).generate(-2.0, n=6, balance="exact", neutral_only=True, method="paper")
    assert df["formula"].tolist() == ["Fe2O3", "NaCl", "TiO2", "Fe2O3", "NaCl", "Fe2O3"]
    assert df.attrs["redrawn_not_neutral"] == 1 and df["charge_neutral"].all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GenerateWarning)  # rows may be dropped if few can be neutral
        df = gen.generate(-2.0, n=50, balance="exact", neutral_only=True, **constraint.kwargs, method="paper")
    assert df["charge_neutral"].all() and (df["valence"] < 1e-3).all()


def test_exact_calls_neutral_only_small_exact_formulas(gen):
    # Both rows are neutral as integers, but as formula units of 24 and 40 atoms: the first moves to one
    # of at most 20 atoms; the second has 9 elements, more than generation balances, so it is only
    # measured, and within tol is not exact.
    big = {"Na": 11 / 24, "Al": 3 / 24, "O": 10 / 24}
    counts = {"Li": 7, "Na": 5, "Rb": 3, "Cs": 3, "Mg": 4, "F": 6, "Cl": 4, "O": 4, "S": 4}
    nine = {symbol: count / 40 for symbol, count in counts.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GenerateWarning)  # the 9-element row is not balanced
        df = replay(gen, [big, nine]).generate(-2.0, n=2, balance="exact", method="paper")
    assert df["valence_raw"].max() < 1e-12
    assert df["charge_neutral"].tolist() == [True, False]
    assert df["balance_skipped"].tolist() == [False, True]
    assert parse_formula(df["formula"].iloc[0]).num_atoms <= 20


def test_known_training_composition_is_not_novel_and_is_its_own_nearest(gen):
    reference = gen.reference
    row = 5
    vocab = gen.vocabulary
    x = reference.x_b[row].toarray()[0]
    composition = {vocab.symbols[i]: x[i] for i in np.flatnonzero(x)}
    df = replay(gen, [composition]).generate(-2.0, n=1, balance="none", threshold=0.001, method="paper")
    assert df["formula"].iloc[0] == reference.formulas[row]
    assert df["nearest_formula"].iloc[0] == reference.formulas[row]
    assert df["nearest_distance"].iloc[0] == pytest.approx(0.0, abs=1e-9)
    assert df["nearest_property"].iloc[0] == reference.y[row]
    assert not df["novel"].iloc[0] and not df["not_in_training"].iloc[0]


def test_nearest_is_the_training_split_nearest(gen):
    train_split = gen.sampler.record.load_split().train
    full_index = NearestIndex.from_dataset(train_split, gen.sampler.normaliser, "b")
    x = threshold_fractions(gen.sampler.sample(-1.0, 50, seed=3)[:, : len(gen.vocabulary)], 0.25)
    distance, index = gen.nearest.query(x)
    expected_distance, expected_index = full_index.query(x)
    np.testing.assert_allclose(distance, expected_distance, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(index, expected_index)


# --- generation behaviour ---------------------------------------------------------------------------------


def test_unconstrained_rows_decode_the_samplers_vectors(gen):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GenerateWarning)  # ~80-element rows are not balanced
        df = gen.generate(-1.0, n=8, balance="none", seed=4, method="paper")
    raw = gen.sampler.sample(-1.0, 8, seed=4)
    kept = threshold_fractions(raw[:, : len(gen.vocabulary)])
    expected = [
        paper_string({gen.vocabulary.symbols[i]: row[i] for i in np.flatnonzero(row)}) for row in kept
    ]
    assert df["raw_composition"].tolist() == expected
    assert df["draw"].tolist() == list(range(8))
    np.testing.assert_allclose(df["predicted_property"], gen.sampler.predict_property(raw), rtol=1e-6)
    assert (df["balance_skipped"] == (df["n_elements"] > 8)).all()


def test_same_seed_same_rows(gen, constraint):
    a = gen.generate(-2.0, n=64, balance="mh", seed=1, **constraint.kwargs, method="paper")
    b = gen.generate(-2.0, n=64, balance="mh", seed=1, **constraint.kwargs, method="paper")
    c = gen.generate(-2.0, n=64, balance="mh", seed=2, **constraint.kwargs, method="paper")
    pd.testing.assert_frame_equal(a, b)
    assert a["raw_composition"].tolist() != c["raw_composition"].tolist()


def test_several_targets_and_unique(gen, constraint):
    df = gen.generate([-2.0, -1.0], n=40, balance="mh", **constraint.kwargs, method="paper")
    assert df["target"].tolist() == [-2.0] * 40 + [-1.0] * 40
    unique = gen.generate([-2.0, -1.0], n=40, balance="mh", unique=True, **constraint.kwargs, method="paper")
    assert not unique.duplicated(["target", "formula"]).any()
    assert len(unique) + unique.attrs["duplicates_removed"] == 80
    pd.testing.assert_frame_equal(unique, df.drop_duplicates(["target", "formula"]).reset_index(drop=True))
    df = replay(gen, [NACL, FE2O3, NACL]).generate(
        [-2.0, -1.0], n=3, balance="none", unique=True, method="paper"
    )
    assert df["formula"].tolist() == ["NaCl", "Fe2O3", "NaCl", "Fe2O3"]  # one row per formula and target
    assert df.attrs["duplicates_removed"] == 2


def test_empty_decodes_are_redrawn_and_counted(gen):
    empty = {"Na": 0.01, "Cl": 0.01}  # nothing reaches TH
    df = replay(gen, [empty, NACL]).generate(-2.0, n=2, balance="none", method="paper")
    assert df["formula"].tolist() == ["NaCl", "NaCl"]
    assert df["draw"].tolist() == [1, 3]
    assert df.attrs["redrawn_empty"] == 2 and df.attrs["redrawn"] == 2 and df.attrs["dropped"] == 0


def test_rows_that_never_pass_are_dropped_with_a_warning(gen):
    with pytest.warns(
        GenerateWarning, match=r"only 0 of 3 rows filled.*\d+ decoded to nothing at threshold 0.03"
    ):
        df = replay(gen, [{"Na": 0.01}]).generate(-2.0, n=3, balance="mh", max_rounds=2, method="paper")
    assert df.empty and list(df.columns) == list(COLUMNS)
    assert df.attrs["dropped"] == 3


def test_cvae_has_no_predicted_property(small_csv, tmp_path, train_small):
    # 50 steps: the default softmax decoder starts uniform over the elements (all below TH) for a few
    run = train_small(small_csv, tmp_path / "cvae", model="cvae", steps=50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GenerateWarning)
        df = Generator.from_run(run).generate(-2.0, n=4, balance="none", method="paper")
    assert len(df) == 4
    assert df["predicted_property"].isna().all() and df["predicted_property_balanced"].isna().all()


# --- constraints: zero leaks ------------------------------------------------------------------------------


def test_ten_thousand_constrained_samples_never_leak(gen, constraint):
    df = gen.generate(-2.0, n=10_000, balance="none", seed=7, **constraint.kwargs, method="paper")
    assert len(df) == 10_000 and df.attrs["dropped"] == 0
    constraint.assert_no_leaks(df)
    assert df.attrs["redrawn_constraint"] > 1000  # the constraints did bite: many draws were replaced
    assert df["n_elements"].nunique() > 1


def test_constrained_samples_with_mh_never_leak(gen, constraint):
    df = gen.generate(-2.0, n=500, balance="mh", seed=8, **constraint.kwargs, method="paper")
    assert len(df) == 500
    constraint.assert_no_leaks(df)
    assert df.attrs["redrawn"] > 0


def test_exclude_alone_at_default_threshold(gen):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GenerateWarning)
        df = gen.generate(-2.0, n=32, balance="mh", exclude="Pb,Hg,Cd,O", method="paper")
    assert len(df) == 32
    assert not df["formula"].map(lambda f: _symbols(f) & {"Pb", "Hg", "Cd", "O"}).any()


# --- extrapolation ----------------------------------------------------------------------------------------


def test_extrapolation_warns_but_generates(gen, constraint):
    lo, hi = gen.property_range
    with pytest.warns(ExtrapolationWarning, match="outside the model's training range"):
        df = gen.generate(hi + 5.0, n=8, balance="none", **constraint.kwargs, method="paper")
    assert len(df) == 8 and df.attrs["extrapolation"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExtrapolationWarning)
        df = gen.generate((lo + hi) / 2, n=8, balance="none", **constraint.kwargs, method="paper")
    assert not df.attrs["extrapolation"]


# --- bad input ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"elements": "Li,Xx"}, "elements: unknown element symbol 'Xx'"),
        ({"require": "o"}, "require: unknown element symbol 'o' \\(did you mean 'O'\\?\\)"),
        ({"exclude": "Pb,,Hg"}, "exclude: empty element symbol"),
        ({"elements": ""}, "elements: no element symbols given"),
        ({"require": "U"}, "require: U not in the model's vocabulary"),
        ({"elements": "Li,O,U,Np"}, "elements: U, Np not in the model's vocabulary"),
        ({"require": "O", "exclude": "Pb,O"}, "O both required and excluded"),
        ({"elements": "Li,O", "require": "Fe"}, "required Fe not among elements Li,O"),
        ({"require": "Li,O,Fe", "max_elements": 2}, "3 required elements .* max_elements=2"),
        ({"max_elements": 0}, "max_elements must be an integer between 1 and 118"),
        ({"max_elements": 2.5}, "max_elements must be an integer"),
        ({"elements": "Fe", "exclude": "Fe"}, "every element of the model is excluded"),
        ({"n": 0}, "n must be an integer between 1 and 100000"),
        ({"n": -3}, "n must be an integer between 1 and 100000"),
        ({"n": 2.5}, "n must be an integer between 1 and 100000"),
        ({"target": float("nan")}, "target nan is not a finite number"),
        ({"target": float("inf")}, "target inf is not a finite number"),
        ({"target": "-2.0"}, "target '-2.0' is not a number"),
        ({"target": None}, "target None is not a number"),
        ({"target": []}, "no target given"),
        ({"balance": "greedy"}, "unknown balancing method 'greedy'"),
        ({"oxidation": "rare"}, "unknown oxidation table 'rare'"),
        ({"threshold": 1.0}, "threshold must be a number in \\(0, 1\\)"),
        ({"seed": -1}, "seed must be an integer between 0 and"),
        ({"seed": 2**70}, "seed must be an integer between 0 and"),
        ({"n": 10_000_000}, "n must be an integer between 1 and 100000"),
        ({"target": [-2.0, -1.0], "n": 60_000}, "at most 100,000 per call"),
        ({"max_atoms": 300, "balance": "exact"}, "max_atoms must be an integer between 2 and 30"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error(gen, kwargs, message):
    kwargs = {"target": -2.0, "n": 4, **kwargs}
    with pytest.raises(StoichgenError, match=message):
        gen.generate(kwargs.pop("target"), **kwargs, method="paper")


def test_missing_corrupt_or_non_generative_model(small_csv, tmp_path, train_small):
    with pytest.raises(RunError, match="no checkpoint"):
        Generator.from_run(tmp_path / "missing")
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / CHECKPOINT).write_bytes(b"not a checkpoint")
    with pytest.raises(RunError, match="corrupt"):
        Generator.from_run(tmp_path / "corrupt")
    train_small(small_csv, tmp_path / "dnn", model="dnn", steps=2)
    with pytest.raises(RunError, match="not a generative model"):
        Generator.from_run(tmp_path / "dnn")


def test_no_bundled_model(monkeypatch, tmp_path):
    monkeypatch.setattr(pipeline_module, "bundled_run_dir", lambda name: tmp_path / "none")
    with pytest.raises(
        GenerateError, match=r"no bundled default model; give a run directory \(model=RUN_DIR\)"
    ):
        Generator.default()


def test_bundled_model_used_when_present(monkeypatch, run_dir):
    monkeypatch.setattr(
        pipeline_module, "bundled_run_dir", lambda name: run_dir if name == "cgan-bp" else run_dir / "x"
    )
    generator = Generator.default()
    assert generator.run_dir == run_dir and generator.surrogate is None  # no bundled surrogate there


# --- the training reference cache -------------------------------------------------------------------------


def test_reference_cached_and_loaded_without_the_data(gen, run_dir, monkeypatch):
    gen.reference  # noqa: B018 - built (and cached on disk) on first use
    assert (run_dir / REFERENCE).is_file()

    def no_data(record, dataset=None):
        raise AssertionError("the data set should not be reloaded")

    monkeypatch.setattr(RunRecord, "load_split", no_data)
    again = Generator.from_run(run_dir)
    assert again.reference.formulas == gen.reference.formulas
    np.testing.assert_array_equal(again.reference.y, gen.reference.y)
    assert (again.reference.x_b != gen.reference.x_b).nnz == 0


def test_reference_is_the_training_split(run_dir):
    split = RunRecord.load(run_dir).load_split().train
    assert 0 < len(split) < 600
    reference = Reference.load(run_dir / REFERENCE) if (run_dir / REFERENCE).is_file() else None
    path = write_reference(run_dir)
    assert path == run_dir / REFERENCE
    written = Reference.load(path)
    assert written.formulas == tuple(split.frame["reduced_formula"])
    np.testing.assert_array_equal(written.x_b.toarray(), split.x_b())
    if reference is not None:
        assert reference.key == written.key


def test_stale_or_corrupt_reference_is_rebuilt(small_csv, tmp_path, train_small):
    run = train_small(small_csv, tmp_path / "run", steps=2)
    payload = RunRecord.load(run)
    good = load_reference(run, payload)
    Reference(good.x_b, good.y, good.formulas, key="another run").save(run / REFERENCE)
    assert load_reference(run, payload).key == good.key  # rebuilt on key mismatch ...
    assert Reference.load(run / REFERENCE).key == good.key  # ... and rewritten
    (run / REFERENCE).write_bytes(b"garbage")
    with pytest.warns(GenerateWarning, match="unreadable"):
        assert load_reference(run, payload).formulas == good.formulas


def test_training_data_gone_is_a_clear_error(small_csv, tmp_path, train_small):
    csv = tmp_path / "mine.csv"
    csv.write_text(small_csv.read_text())
    run = train_small(csv, tmp_path / "run", steps=2)
    csv.unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GenerateWarning)
        with pytest.raises(RunError, match="cannot reload the data of run"):
            Generator.from_run(run).generate(-2.0, n=2, balance="none", method="paper")


# --- output files -----------------------------------------------------------------------------------------


def test_write_table_formats_and_refusals(gen, tmp_path):
    df = replay(gen, [NACL, FE2O3]).generate(-2.0, n=2, balance="none", method="paper")
    write_table(df, tmp_path / "a.csv")
    assert pd.read_csv(tmp_path / "a.csv")["formula"].tolist() == ["NaCl", "Fe2O3"]
    write_table(df, tmp_path / "a.json")
    records = json.loads((tmp_path / "a.json").read_text())
    assert [r["formula"] for r in records] == ["NaCl", "Fe2O3"] and set(records[0]) == set(COLUMNS)
    with pytest.raises(GenerateError, match="exists; overwrite it with force=True"):
        write_table(df, tmp_path / "a.csv")
    write_table(df.iloc[:1], tmp_path / "a.csv", force=True)
    assert len(pd.read_csv(tmp_path / "a.csv")) == 1
    with pytest.raises(GenerateError, match="unknown format '.xlsx'"):
        write_table(df, tmp_path / "a.xlsx")
    with pytest.raises(GenerateError, match="does not exist"):
        write_table(df, tmp_path / "no" / "a.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "a.json"]  # no temp files left


def test_parquet_needs_pyarrow(gen, tmp_path):
    df = replay(gen, [NACL]).generate(-2.0, n=1, balance="none", method="paper")
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        with pytest.raises(GenerateError, match="pip install pyarrow"):
            write_table(df, tmp_path / "a.parquet")
        assert not (tmp_path / "a.parquet").exists()
    else:
        write_table(df, tmp_path / "a.parquet")
        assert pd.read_parquet(tmp_path / "a.parquet")["formula"].tolist() == ["NaCl"]


def test_bundled_default_model_loads_and_generates():
    """The shipped CondGAN(x^bp) trained on the MP set: `stoichgen generate --target -2.0` after install."""
    gen = Generator.default()
    assert gen.vocabulary.symbols[:3] == ("H", "He", "Li") and len(gen.vocabulary) == 89
    df = gen.generate(-2.0, n=64, balance="mh", require="O", seed=0, method="paper")
    assert len(df) == 64 and df["formula"].str.contains("O").all()
    assert df["charge_neutral"].mean() > 0.8
    # P(x~) of the trained model follows the target (the untrained head would sit far from it)
    assert abs(df["predicted_property"].median() - (-2.0)) < 0.5
    vae = Generator.from_run(bundled_run_dir("cvae-bp")).generate(-1.0, n=16, method="paper")
    assert len(vae) == 16 and vae["predicted_property"].isna().all()


def test_max_atoms_bounds_exact_balancing():
    gen = Generator.default()
    small = gen.generate(-2.0, n=32, balance="exact", max_atoms=6, seed=0, method="paper")
    atoms = [parse_formula(f).num_atoms for f in small.loc[small["charge_neutral"], "formula"]]
    assert atoms and max(atoms) <= 6
    with pytest.raises(StoichgenError, match="max_atoms"):
        gen.generate(-2.0, n=4, max_atoms=1, method="paper")


# --- the locks -------------------------------------------------------------------------------------------


def test_threshold_that_empties_every_row_is_named(gen):
    with pytest.warns(GenerateWarning, match="decoded to nothing at threshold 0.99") as caught:
        df = gen.generate(-2.0, n=4, balance="none", threshold=0.99, max_rounds=1, method="paper")
    assert df.empty
    assert not any(
        "constraints (none)" in str(w.message) and "threshold" not in str(w.message) for w in caught
    )


def test_readme_column_table_is_the_schema():
    from pathlib import Path

    from stoichgen.schema import GUIDED_COLUMNS, PAPER_COLUMNS, markdown_table

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert markdown_table(PAPER_COLUMNS) in readme and markdown_table(GUIDED_COLUMNS) in readme


def test_max_e_hull_needs_a_formation_energy(small_csv, run_dir, tmp_path, train_small):
    """A run on the user's CSV (property of unknown meaning) has no hull: max_e_hull is refused."""
    surrogate = train_small(small_csv, tmp_path / "surrogate", model="surrogate", steps=2)
    generator = Generator.from_run(run_dir, surrogate=surrogate)
    assert generator.hull is None
    with pytest.raises(GenerateError, match="max_e_hull needs a formation energy"):
        generator.generate(-1.0, n=2, max_e_hull=0.0)
    df = generator.generate(-1.0, n=4, seed=0)
    assert df["e_above_hull"].isna().all() and (df["decomposition"] == "").all()
    declared = Generator.from_run(run_dir, surrogate=surrogate, formation_energy=True)
    rows = declared.generate(-1.0, n=4, seed=0, max_e_hull=1.0)  # the CSV's compounds make the hull
    assert rows["e_above_hull"].notna().all() and (rows["e_above_hull"] <= 1.0).all()


def test_a_surrogate_of_another_property_is_refused(small_csv, run_dir, tmp_path, capsys):
    """Issue 25, row 7: a surrogate that learned another property on the same elements was accepted, and
    its band gaps read as formation energies. Refused, as a vocabulary mismatch is: by the API and the CLI."""
    import pandas as pd
    import torch

    from stoichgen.cli import main
    from stoichgen.data import DataSource
    from stoichgen.train import train

    frame = pd.read_csv(small_csv)
    frame["band_gap"] = frame["property"].abs()  # the same rows and elements, another property
    csv = tmp_path / "gaps.csv"
    frame.to_csv(csv, index=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train("surrogate", "bp", tmp_path / "gaps", data=DataSource(str(csv), property_column="band_gap"),
              compile=False, batch_size=64, steps=2, progress=False)  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    with pytest.raises(GenerateError, match="'band_gap'.*train both on the same data") as caught:
        Generator.from_run(run_dir, surrogate=tmp_path / "gaps")
    assert caught.value.field == "surrogate"
    out = tmp_path / "never.csv"
    argv = ["generate", "--model", str(run_dir), "--surrogate", str(tmp_path / "gaps"), "--target", "1"]
    assert main([*argv, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "'band_gap'" in err and "train both on the same data" in err and not out.exists()


def test_novel_means_no_known_compound_and_the_training_notion_keeps_its_own_name(tmp_path):
    """On the bundled model: FeO and Fe2O3 are known compounds (novel False) whichever split holds them;
    a compound of the test split is known but unseen in training; a user's reference adds its compounds
    to the known ones."""
    from stoichgen.chem.hull import read_hull

    bundled = Generator.default()
    data = bundled.sampler.record.load_data().frame["reduced_formula"]
    unseen = sorted(set(data) - bundled.reference.formula_set)[0]  # in the data set, not in training
    novel, not_in_training = bundled.novelty(["FeO", "Fe4O6", unseen, "Li9Fe7O20"])
    assert novel.tolist() == [False, False, False, True]
    assert not_in_training.tolist()[2:] == [True, True]
    reference = tmp_path / "known.csv"
    reference.write_text("composition,property\nLi9Fe7O20,-1.9\nLi2O,-2.1\nFe2O3,-1.7\nLiFeO2,-2.0\n")
    mine = Generator.default(hull=read_hull(reference))
    assert mine.novelty(["Li9Fe7O20", "Li5Fe3O9"])[0].tolist() == [False, True]
