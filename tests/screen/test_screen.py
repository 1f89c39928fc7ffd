"""stoichgen screen: the scores against the readable per-formula checks, files, resuming, backends."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Composition, Element

from stoichgen.chem.composition import formula_fractions
from stoichgen.chem.validity import smact_valid_guarded
from stoichgen.discover.search import Search
from stoichgen.screen import SCREEN_COLUMNS, Scorer, ScreenError, ScreenSpec, plan, run_screen
from stoichgen.screen import backends as screen_run
from stoichgen.space.assign import TABLES
from stoichgen.space.formulas import formula_text

SPACE = {"elements": ("Li", "Mn", "Fe", "O"), "max_atoms": 12, "target": -2.0}


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return Scorer.default()


def _whole(spec: ScreenSpec, scorer: Scorer) -> pd.DataFrame:
    return pd.concat([scorer.score(spec, chunk) for chunk in plan(spec)], ignore_index=True)


def _brute_force_count(elements: tuple[str, ...], max_atoms: int) -> int:
    """Every reduced count vector of every 2-4 element subset, kept when all its elements are metals
    (pymatgen), or some choice of common states is neutral with cations less electronegative than anions
    (SMACT's Pauling values): the screen's space for oxidation 'common', written the slow way."""
    import itertools
    import math

    import smact
    from pymatgen.core import Element

    from stoichgen.chem.oxidation import oxidation_states

    total = 0
    for k in (2, 3, 4):
        for subset in itertools.combinations(elements, k):
            metals = all(Element(e).is_metal for e in subset)
            chi = [smact.Element(e).pauling_eneg for e in subset]
            states = [[s for s in oxidation_states(e, "common") if s] for e in subset]
            for counts in itertools.product(range(1, max_atoms), repeat=k):
                if sum(counts) > max_atoms or math.gcd(*counts) != 1:
                    continue
                total += metals or any(
                    sum(n * q for n, q in zip(counts, choice, strict=True)) == 0
                    and max(x for x, q in zip(chi, choice, strict=True) if q > 0)
                    < min(x for x, q in zip(chi, choice, strict=True) if q < 0)
                    for choice in itertools.product(*states)
                    if any(q > 0 for q in choice) and any(q < 0 for q in choice)
                )
    return total


def test_plan_covers_every_formula_once_in_chunks_of_at_most_chunk_rows():
    whole = plan(ScreenSpec(**SPACE))
    small = plan(ScreenSpec(**SPACE, chunk_rows=7))
    expected = _brute_force_count(SPACE["elements"], SPACE["max_atoms"])
    assert sum(c.rows for c in whole) == sum(c.rows for c in small) == expected > 91  # 91 ionic + alloys
    assert all(c.rows <= 7 for c in small) and [c.index for c in small] == list(range(len(small)))
    pieces = [(p.elements, i) for c in small for p in c.pieces for i in range(p.start, p.stop)]
    assert len(pieces) == len(set(pieces)) == expected


def test_scores_agree_with_the_readable_per_formula_checks(scorer):
    """SMACT by membership in the guided search's space = SMACT's own smact_validity; the surrogate,
    hull, nearest compound and known flag as the per-formula paths give them."""
    spec = ScreenSpec(elements=("Li", "Mn", "Fe", "O", "S"), max_atoms=10, target=-1.5)
    frame = _whole(spec, scorer)
    formulas = list(frame["formula"])
    assert frame["smact_valid"].tolist() == smact_valid_guarded(formulas)
    metals = frame["system"].map(lambda system: all(Element(e).is_metal for e in system.split("-")))
    assert (frame["charge_neutral"] | metals).all() and len(set(formulas)) == len(formulas)
    assert (frame["oxidation_states"] != "").tolist() == frame["charge_neutral"].tolist()
    # reported by the members that do not rank (predict.MemberSplit)
    x = formula_fractions(formulas, scorer.vocabulary)
    mean, spread = scorer.surrogate.report_fractions_with_spread(x)
    np.testing.assert_allclose(frame["predicted_property"], mean, atol=1e-5)
    np.testing.assert_allclose(frame["uncertainty"], spread, atol=1e-5)
    sample = frame.sample(40, random_state=0)
    columns = ("formula", "predicted_property", "e_above_hull")
    for formula, energy, e_hull in sample[list(columns)].itertuples(index=False):
        assert e_hull == pytest.approx(scorer.hull.query(formula, energy).e_above_hull, abs=1e-6)
    x = formula_fractions(formulas, scorer.vocabulary)
    distance, index = scorer.nearest.query(x)
    np.testing.assert_allclose(frame["nearest_distance"], distance, atol=1e-9)
    picked = scorer.formulas[index]
    differ = np.flatnonzero(frame["nearest_formula"].to_numpy() != picked)
    row_of = {formula: i for i, formula in enumerate(scorer.formulas)}
    for row in differ:  # a tie: the screen's pick is exactly as near as the reference's
        ours = scorer.nearest.points[row_of[frame["nearest_formula"][row]]]
        near = np.sqrt(((x[row] * scorer.nearest.scale - ours) ** 2).sum())
        assert near == pytest.approx(distance[row], abs=1e-9)
    assert len(differ) < 0.05 * len(frame)
    known = set(scorer.formulas)
    assert frame["known"].tolist() == [Composition(f).reduced_formula in known for f in formulas]
    assert frame["known"].any() and not frame["known"].all()


def test_the_score_is_the_guided_searchs(scorer):
    spec = ScreenSpec(elements=("Li", "Mn", "O"), max_atoms=10, target=-2.0)
    frame = _whole(spec, scorer)
    search = Search(scorer.surrogate.select_fractions_with_spread, scorer.chemistry,
                    frozenset(("Li", "Mn", "O")), max_atoms=10, include_known=True,
                    rule=TABLES["common"])  # fmt: skip
    search.score_sets([("Li", "O"), ("Mn", "O"), ("Li", "Mn", "O")])
    guided = {}  # the same table on both sides: every formula and score the same
    for elements, scores in search.scored.items():
        for counts, value in zip(scores.counts, search._objective(scores, -2.0), strict=True):
            guided[formula_text(elements, counts)] = value
    ours = dict(zip(frame["formula"], frame["score"], strict=True))
    both = sorted(set(guided) & set(ours))
    assert len(both) >= 10 and set(guided) <= set(ours)  # the screen also holds the Li-Mn alloys
    np.testing.assert_allclose([ours[f] for f in both], [guided[f] for f in both], atol=1e-5)


def test_candidates_keep_their_order_and_bad_rows_their_place(scorer):
    spec = ScreenSpec(candidates=("Fe2O3", "Xx2O", "Li2MnO3", "", "Li2O", "AmO2"), target=-2.0)
    frame = scorer.score(spec, plan(spec)[0])
    assert frame["formula"].tolist() == ["Fe2O3", "Xx2O", "Li2MnO3", "", "Li2O", "AmO2"]
    assert frame["error"].tolist()[0] == "" and "Xx" in frame["error"][1] and frame["error"][3]
    assert "Am not in the surrogate's vocabulary" in frame["error"][5]
    assert frame["n_elements"].tolist() == [2, 0, 3, 0, 2, 0]
    enumerated = _whole(ScreenSpec(**SPACE), scorer).set_index("formula")
    for formula in ("Fe2O3", "Li2MnO3", "Li2O"):
        row = frame[frame["formula"] == formula].iloc[0]
        assert row["smact_valid"] and row["charge_neutral"]
        assert row["score"] == pytest.approx(enumerated.loc[formula, "score"], abs=1e-5)


def test_top_rows_and_files(tmp_path):
    everything = run_screen(ScreenSpec(**SPACE, chunk_rows=10), tmp_path / "all.parquet", workers=1)
    best = run_screen(ScreenSpec(**SPACE, chunk_rows=10, top=7), tmp_path / "top.parquet", workers=1)
    expected = _brute_force_count(SPACE["elements"], SPACE["max_atoms"])
    assert (everything.rows, everything.chunks, best.rows) == (expected, -(-expected // 10), 7)
    frame = pd.read_parquet(tmp_path / "all.parquet")
    expected = frame.sort_values("score", kind="stable").head(7).reset_index(drop=True)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "top.parquet"), expected)
    assert not list(tmp_path.glob(".*parts"))  # the parts are gone once joined
    with pytest.raises(ScreenError, match="exists"):
        run_screen(ScreenSpec(**SPACE), tmp_path / "all.parquet")


def test_an_interrupted_screen_resumes_where_it_stopped(tmp_path, monkeypatch):
    spec = ScreenSpec(**SPACE, chunk_rows=10)
    run_screen(spec, tmp_path / "whole.parquet", workers=1)
    calls = []
    real = screen_run.score_chunk

    def interrupted(spec, chunk):
        if len(calls) == 4:
            raise KeyboardInterrupt
        calls.append(chunk.index)
        return real(spec, chunk)

    monkeypatch.setattr(screen_run, "score_chunk", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_screen(spec, tmp_path / "resumed.parquet", workers=1)
    assert len(list((tmp_path / ".resumed.parquet.parts").glob("*.parquet"))) == 4
    monkeypatch.setattr(screen_run, "score_chunk", real)
    with pytest.raises(ScreenError, match="different screen"):  # another screen may not take its parts
        run_screen(ScreenSpec(**SPACE, chunk_rows=10, top=3), tmp_path / "resumed.parquet", workers=1)
    result = run_screen(spec, tmp_path / "resumed.parquet", workers=1)
    assert result.skipped == 4
    assert (tmp_path / "resumed.parquet").read_bytes() == (tmp_path / "whole.parquet").read_bytes()


@pytest.mark.slow
def test_every_backend_writes_the_same_file(tmp_path):
    """This process, two worker processes and a local Ray (num_cpus=2): the same bytes."""
    spec = ScreenSpec(**SPACE, chunk_rows=10)
    run_screen(spec, tmp_path / "one.parquet", workers=1)
    run_screen(spec, tmp_path / "two.parquet", workers=2)
    run_screen(spec, tmp_path / "ray.parquet", workers=2, ray="local")
    one = (tmp_path / "one.parquet").read_bytes()
    assert (tmp_path / "two.parquet").read_bytes() == one
    assert (tmp_path / "ray.parquet").read_bytes() == one


def test_the_readme_lists_the_screen_columns():
    from pathlib import Path

    from stoichgen.schema import markdown_table
    from stoichgen.screen import SCREEN_COLUMNS

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert markdown_table(SCREEN_COLUMNS) in readme


def test_a_space_without_formulas_writes_an_empty_table_with_the_columns(tmp_path):
    result = run_screen(ScreenSpec(elements=("O", "F"), max_atoms=6), tmp_path / "none.parquet", workers=1)
    frame = pd.read_parquet(tmp_path / "none.parquet")
    assert result.rows == 0 and len(frame) == 0
    assert list(frame.columns) == [c.name for c in SCREEN_COLUMNS]


@pytest.mark.parametrize(
    "spec",
    [
        ScreenSpec(elements=("He", "Ne"), target=-2.0, top=5),
        ScreenSpec(elements=("He", "Ne"), objective="stability", top=5),
        ScreenSpec(elements=("Li",), min_elements=1, target=-2.0, top=5),
        ScreenSpec(elements=("He", "Ne"), target=-2.0),
    ],
)
def test_an_empty_space_with_a_score_writes_an_empty_table_and_leaves_no_parts(tmp_path, spec):
    """Issue 25, row 5: with --top an empty space crashed ('NoneType' has no sort_values), left its parts
    folder behind, and a rerun crashed the same way."""
    for _ in range(2):  # the rerun too
        result = run_screen(spec, tmp_path / "none.parquet", workers=1, force=True)
        frame = pd.read_parquet(tmp_path / "none.parquet")
        assert result.rows == 0 and list(frame.columns) == [c.name for c in SCREEN_COLUMNS]
        assert [p.name for p in tmp_path.iterdir()] == ["none.parquet"]


@pytest.mark.parametrize("score", [{"target": -2.0}, {"objective": "stability"}])
def test_a_score_without_top_ranks_every_row(tmp_path, score):
    """Chemist's point: --target without --top wrote rows in enumeration order; now best first, ties in
    enumeration order (the order --top keeps), every row kept."""
    spec = ScreenSpec(elements=("Li", "Mn", "Fe", "O"), max_atoms=12, chunk_rows=10, **score)
    result = run_screen(spec, tmp_path / "ranked.parquet", workers=1)
    frame = pd.read_parquet(tmp_path / "ranked.parquet")
    scorer = Scorer.default()
    enumerated = pd.concat([scorer.score(spec, chunk) for chunk in plan(spec)], ignore_index=True)
    expected = enumerated.sort_values("score", kind="stable", na_position="last").reset_index(drop=True)
    assert result.rows == len(frame) == len(enumerated) > 100
    assert not frame["formula"].equals(enumerated["formula"])  # the enumeration order is not kept
    pd.testing.assert_frame_equal(frame, expected)
