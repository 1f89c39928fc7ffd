"""Formation energies on the bundled data's footing: elemental references computed by the same pipeline,
and per-anion shifts fitted on training-split compounds (as the MP2020 scheme corrects anions).

    E_f = E(compound) − Σ_i x_i μ_i + Σ_a c_a x_a      (eV/atom)

μ_i: the element's relaxed energy per atom, from ASE's ``bulk`` prototype where ASE defines one, else the
structure search itself (O, N, Cl, ...); x_i: atomic fractions; c_a: the shift of anion a, applied when
``a`` is the composition's most electronegative element (MP2020 corrects an oxide's O, not an oxygen in a
cation role). The shipped ``calibration.json`` holds the references and shifts, fitted by
``benchmarks/bench_verify.py`` on training-split compounds only (the bundled surrogate's split).

>>> cal = Calibration(elements={"Li": -1.9, "O": -4.9}, corrections={"O": -0.6})
>>> round(cal.formation_energy("Li2O", -4.8), 3)  # -4.8 - (2/3 (-1.9) + 1/3 (-4.9)) - 0.6/3
-2.1
>>> anion_fractions("LiFeO2", ("O", "F"))
{'O': 0.5}
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pymatgen.core import Composition

from stoichgen.io import atomic_write_text
from stoichgen.verify.options import DEFAULT_OPTIONS, VerifyOptions
from stoichgen.verify.search import relax, search

__all__ = ["ANIONS", "CALIBRATION_FILE", "Calibration", "anion_fractions", "element_energy",
           "fit_corrections"]  # fmt: skip

CALIBRATION_FILE = Path(__file__).with_name("calibration.json")
# MP2020's anion corrections (oxide, nitride, halides, chalcogenides, hydride, silicide, antimonide) and
# the pnictogens beside them
ANIONS = ("O", "N", "F", "Cl", "Br", "I", "S", "Se", "Te", "H", "P", "As", "Sb", "Si", "C", "B")
MIN_COMPOUNDS_PER_SHIFT = 3  # an anion seen in fewer training compounds keeps a shift of 0
RIDGE = 0.01  # pulls a shift that few compounds support towards 0 (eV/atom per unit fraction, squared)


def anion_fractions(formula: str, anions: Sequence[str] = ANIONS) -> dict[str, float]:
    """The atomic fraction of the composition's anion (its most electronegative element, when it is one of
    ``anions``); empty for a composition without one (an intermetallic, an element)."""
    comp = Composition(formula)
    if len(comp) < 2:
        return {}
    anion = max(comp, key=lambda el: (el.X if not math.isnan(el.X) else 0.0, el.Z))
    if anion.symbol not in anions:
        return {}
    return {anion.symbol: comp.get_atomic_fraction(anion)}


def element_energy(symbol: str, options: VerifyOptions = DEFAULT_OPTIONS, device: str = "cpu") -> float:
    """μ of one element (eV/atom): its ASE ``bulk`` prototype relaxed, or, where ASE defines none (the
    diatomic gases, the complex structures), the best of the same search a compound gets. NaN when both
    fail."""
    from ase.build import bulk
    from pymatgen.io.ase import AseAtomsAdaptor

    try:
        prototype = AseAtomsAdaptor.get_structure(bulk(symbol))
    except Exception:  # ASE has no (primitive) prototype for this element: ValueError, RuntimeError, ...
        prototype = None
    energies = []
    if prototype is not None:
        energy, _, reason = relax(prototype, options, device)
        if not reason:
            energies.append(energy)
    found = search(symbol, options, device) if prototype is None else None
    if found is not None and math.isfinite(found.energy_per_atom):
        energies.append(found.energy_per_atom)
    return min(energies) if energies else math.nan


@dataclass(frozen=True)
class Calibration:
    """Elemental references μ (eV/atom) and anion shifts c (eV per unit anion fraction), with what they
    were fitted on (``fit``: compounds, split, mean absolute error on them)."""

    elements: dict[str, float] = field(default_factory=dict)
    corrections: dict[str, float] = field(default_factory=dict)
    fit: dict[str, object] = field(default_factory=dict)

    def uncorrected(self, formula: str, energy_per_atom: float) -> float:
        """E − Σ x_i μ_i; NaN when an element has no reference."""
        comp = Composition(formula)
        reference = 0.0
        for el in comp:
            mu = self.elements.get(el.symbol, math.nan)
            reference += comp.get_atomic_fraction(el) * mu
        return energy_per_atom - reference

    def formation_energy(self, formula: str, energy_per_atom: float) -> float:
        """The verified formation energy (eV/atom) on the bundled data's footing."""
        shift = sum(self.corrections.get(a, 0.0) * x for a, x in anion_fractions(formula).items())
        return self.uncorrected(formula, energy_per_atom) + shift

    def missing(self, formulas: Sequence[str]) -> list[str]:
        """Elements of ``formulas`` without a reference yet."""
        needed = {el.symbol for f in formulas for el in Composition(f)}
        return sorted(needed - set(self.elements))

    def to_json(self) -> str:
        return json.dumps({"elements": self.elements, "corrections": self.corrections, "fit": self.fit},
                          indent=1, sort_keys=True) + "\n"  # fmt: skip

    @classmethod
    def from_json(cls, text: str) -> Calibration:
        data = json.loads(text)
        elements = {k: float(v) for k, v in data["elements"].items()}
        return cls(elements, {k: float(v) for k, v in data["corrections"].items()}, dict(data.get("fit", {})))

    def save(self, path: Path | str = CALIBRATION_FILE) -> None:
        atomic_write_text(path, self.to_json())


@functools.cache
def shipped() -> Calibration:
    """The calibration shipped with the package (empty when it has not been fitted)."""
    if not CALIBRATION_FILE.exists():
        return Calibration()
    return Calibration.from_json(CALIBRATION_FILE.read_text())


def fit_corrections(
    calibration: Calibration, formulas: Sequence[str], energies: Sequence[float], known: Sequence[float]
) -> Calibration:
    """Anion shifts fitted by ridge least squares so that the verified formation energies of training
    compounds (``energies``: their relaxed energies per atom) meet the bundled values ``known``.
    Compounds whose search failed (NaN) are left out; an anion seen in fewer than
    ``MIN_COMPOUNDS_PER_SHIFT`` of them keeps 0.

    >>> cal = Calibration(elements={"Li": 0.0, "O": 0.0, "Na": 0.0})
    >>> fitted = fit_corrections(cal, ["Li2O", "LiO2", "Na2O", "Na"], [-1.0, -0.5, -0.8, 0.0],
    ...                          [-2.0, -1.5, -1.8, 0.0])
    >>> round(fitted.corrections["O"], 1), fitted.fit["n_compounds"]
    (-2.0, 4)
    """
    residual, rows, kept = [], [], []
    for formula, energy, target in zip(formulas, energies, known, strict=True):
        raw = calibration.uncorrected(formula, energy)
        if not (math.isfinite(raw) and math.isfinite(target)):
            continue
        residual.append(target - raw)
        rows.append(anion_fractions(formula))
        kept.append(formula)
    counts = {a: sum(a in r for r in rows) for a in ANIONS}
    fitted = [a for a in ANIONS if counts[a] >= MIN_COMPOUNDS_PER_SHIFT]
    x = np.array([[r.get(a, 0.0) for a in fitted] for r in rows]).reshape(len(rows), len(fitted))
    y = np.array(residual)
    shifts = np.linalg.solve(x.T @ x + RIDGE * np.eye(len(fitted)), x.T @ y) if fitted else np.zeros(0)
    corrections = {a: round(float(c), 4) for a, c in zip(fitted, shifts, strict=True)}
    after = y - x @ shifts if fitted else y
    fit = {**calibration.fit, "n_compounds": len(kept), "compounds_per_anion": {a: counts[a] for a in fitted},
           "mae_before": float(np.abs(y).mean()) if len(y) else math.nan,
           "mae_after": float(np.abs(after).mean()) if len(y) else math.nan}  # fmt: skip
    return Calibration(dict(calibration.elements), corrections, fit)
