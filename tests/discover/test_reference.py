"""The user's own known compounds as the hull (``Generator(..., hull=read_hull(csv))``, ``--reference``):
e_above_hull and the stability objective use them, and a reference that cannot serve is refused naming
``reference`` (reading it: tests/chem/test_hull_reference.py; the command line: tests/cli)."""

from __future__ import annotations

import numpy as np
import pytest

import stoichgen
from stoichgen.chem.hull import Hull, read_hull
from stoichgen.discover.pipeline import Generator
from stoichgen.errors import GenerateError

# a tiny, deliberately deeper Li-Fe-O hull than the bundled set's (MP: Li2O about -2.07 eV/atom)
TINY = "composition,property\nLi2O,-2.6\nFe2O3,-2.2\nLiFeO2,-2.5\nFeO,-1.9\nLi2O2,-1.9\n"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("reference") / "tiny.csv"
    path.write_text(TINY)
    return path


@pytest.fixture(scope="module")
def bundled():
    return stoichgen.Generator.default()


def test_the_reference_moves_e_above_hull_as_its_hull_says(tiny, bundled):
    own = Generator.default(hull=read_hull(tiny))
    assert own.hull_given and not bundled.hull_given
    frame = own.generate(-1.8, n=6, elements="Li,Fe,O", seed=0)
    direct = Hull.from_formulas(["Li2O", "Fe2O3", "LiFeO2", "FeO", "Li2O2"], [-2.6, -2.2, -2.5, -1.9, -1.9])
    for row in frame.itertuples():
        assert row.e_above_hull == pytest.approx(
            direct.query(row.formula, row.predicted_property).e_above_hull
        )
    # the same formulas against the bundled set sit lower: the tiny hull is deeper
    rows = zip(frame["formula"], frame["predicted_property"], strict=True)
    against_mp = np.array([bundled.hull.query(f, e).e_above_hull for f, e in rows])
    assert (frame["e_above_hull"].to_numpy() > against_mp + 0.05).all()


def test_the_stability_objective_uses_the_reference(tiny):
    own = Generator.default(hull=read_hull(tiny))
    frame = own.generate(None, n=4, objective="stability", elements="Li,Fe,O", seed=0)
    direct = read_hull(tiny)
    for row in frame.itertuples():
        assert row.e_above_hull == pytest.approx(
            direct.query(row.formula, row.predicted_property).e_above_hull
        )


@pytest.mark.parametrize(("elements", "named"), [("Li,Mn,O", "Mn"), (None, "H")])
def test_a_reference_lacking_the_systems_elements_is_refused(tiny, elements, named):
    own = Generator.default(hull=read_hull(tiny))
    with pytest.raises(GenerateError, match=f"holds no compound of .*{named}") as err:
        own.generate(-1.8, n=2, elements=elements)
    assert err.value.field == "reference"


def test_a_reference_needs_a_formation_energy(tiny, run_dir):
    """The tiny run of tests/conftest.py was trained on a CSV not declared a formation energy."""
    with pytest.raises(GenerateError, match="needs a formation energy") as err:
        Generator.from_run(run_dir, hull=read_hull(tiny))
    assert err.value.field == "reference"
    assert Generator.from_run(run_dir, formation_energy=True, hull=read_hull(tiny)).hull_given
