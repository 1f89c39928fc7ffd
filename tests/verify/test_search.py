"""The real potential on tiny cells (seconds): a 2-atom compound relaxes, CIFs parse back, a known
binary's formation energy within the tolerance measured for it."""


import pytest

from stoichgen.errors import FormulaError
from stoichgen.verify.options import VerifyError, VerifyOptions
from stoichgen.verify.search import check_composition

pytest.importorskip("chgnet")
pytest.importorskip("pyxtal")


def test_bad_formulas_and_unknown_elements_are_refused_by_name():
    with pytest.raises(FormulaError, match="'Li2Qq'"):
        check_composition("Li2Qq")
    with pytest.raises(VerifyError, match="Cm unknown to the potential"):
        check_composition("CmO2")
    with pytest.raises(VerifyError, match="atoms per formula unit"):
        check_composition("Li40O41")
    assert check_composition("Li0.5O0.25") == ("Li2O", (("Li", 2), ("O", 1)))


def test_a_two_atom_compound_relaxes_and_its_cif_parses_back():
    from pymatgen.core import Composition, Structure

    from stoichgen.verify.search import search

    options = VerifyOptions(trials=2, steps=60, max_cell_atoms=2, budget_s=600.0)
    found = search("NaCl", options)
    assert found.reason == "" and found.trials == 2
    assert -6.0 < found.energy_per_atom < -2.0 and 10 < found.volume_per_atom < 80
    structure = Structure.from_str(found.cif, fmt="cif")
    assert structure.composition.reduced_composition == Composition("NaCl")
    assert len(structure) == 2
    again = search("NaCl", options)
    assert again.energy_per_atom == pytest.approx(found.energy_per_atom, abs=1e-4)  # seeded: repeatable
