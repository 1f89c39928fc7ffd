"""Reading known compounds for a hull (``read_hull``, ``--reference`` of ``generate`` and ``hull``): every
bad row named and refused, nothing dropped silently."""

from __future__ import annotations

import pytest

from stoichgen.chem.hull import Hull, read_hull
from stoichgen.errors import DataError


def test_a_clean_reference_is_the_hull_of_its_rows(write_csv):
    path = write_csv("formula,energy\nLi2O,-2.1\nLiO2,-1.0\n")
    hull = read_hull(path, "formula", "energy")
    direct = Hull.from_formulas(["Li2O", "LiO2"], [-2.1, -1.0])
    assert len(hull) == 2 and hull.elements == {"Li", "O"}
    assert hull.query("Li2O2", -1.5).e_above_hull == pytest.approx(direct.query("Li2O2", -1.5).e_above_hull)


def test_every_bad_row_is_named_nan_included(write_csv):
    path = write_csv("composition,property\nLi2O,-2.1\nLi2O2,nan\nXx2O,-1\nLiO2,abc\nLiO3,\nLi3O,inf\n")
    with pytest.raises(DataError) as err:
        read_hull(path)
    text = str(err.value)
    assert err.value.field == "reference" and "5 bad rows" in text
    for row, reason in [(3, "'nan' is not a finite number"), (4, "Xx"), (5, "'abc' is not a number"),
                        (6, "'' is not a number"), (7, "'inf' is not a finite number")]:  # fmt: skip
        assert f"row {row}: " in text and reason in text
    assert "row 2:" not in text  # the good row is not blamed


def test_polymorphs_are_kept_and_the_lowest_counts(write_csv):
    path = write_csv("composition,property\nLi2O,-1.0\nLi2O,-2.0\n")
    assert len(read_hull(path)) == 2
    assert read_hull(path).query("Li2O", -2.0).e_above_hull == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(
    ("text", "columns", "message"),
    [
        ("composition,property\n", ("composition", "property"), "no rows"),
        ("formula,property\nLi2O,-2\n", ("composition", "property"), "missing column 'composition'"),
    ],
)
def test_unreadable_references_name_the_field(write_csv, text, columns, message):
    with pytest.raises(DataError, match=message) as err:
        read_hull(write_csv(text), *columns)
    assert err.value.field == "reference"
    with pytest.raises(DataError, match="no such file"):
        read_hull(write_csv(text).parent / "missing.csv")


def test_the_bundled_sets_rows_read_back_give_the_bundled_hull(tmp_path):
    """read_hull and hull_of (the bundled set's reading) agree on the same compounds."""
    from stoichgen.data import load_mp_formation_energy
    from stoichgen.space.score import hull_of

    dataset = load_mp_formation_energy()
    system = {"Li", "Fe", "P", "O"}
    rows = dataset.frame[dataset.frame["composition"].map(lambda c: {el.symbol for el in c} <= system)]
    path = tmp_path / "lifepo.csv"
    rows[["formula", "property"]].rename(columns={"formula": "composition"}).to_csv(path, index=False)
    mine, bundled = read_hull(path), hull_of(dataset)
    for formula, energy in [("LiFePO4", -2.5), ("Li3Fe2(PO4)3", -2.4), ("Fe2P", -0.3), ("Li5FeO4", -2.0)]:
        assert mine.query(formula, energy).e_above_hull == pytest.approx(
            bundled.query(formula, energy).e_above_hull, abs=1e-9
        )
