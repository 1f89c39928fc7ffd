"""One composition's structure search: random crystals from pyxtal, each relaxed by CHGNet through ASE
(cell and positions), the lowest energy kept.

chgnet, pyxtal and ase are imported inside the functions that need them, so that the package (and
``stoichgen --help``) works without the ``verify`` extra.

>>> check_composition("Li2O")[1]
(('Li', 2), ('O', 1))
>>> check_composition("LiXx")
Traceback (most recent call last):
...
stoichgen.errors.FormulaError: unknown element symbol 'Xx' in formula 'LiXx'
>>> found = search("NaCl", VerifyOptions(trials=1, steps=20))  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import time
import warnings
import zlib
from dataclasses import dataclass

import numpy as np
from pymatgen.core import Composition, Element

from stoichgen.chem.composition import parse_formula
from stoichgen.verify.options import DEFAULT_OPTIONS, VerifyError, VerifyOptions, require_extra

__all__ = ["MAX_FORMULA_ATOMS", "POTENTIAL_ELEMENTS", "Found", "check_composition", "potential", "relax",
           "search"]  # fmt: skip

POTENTIAL_ELEMENTS = 94  # CHGNet 0.3.0 knows elements H (1) to Pu (94)
MAX_FORMULA_ATOMS = 60  # atoms per formula unit the search takes on (one cell of Z = 1)
# common space groups first (ICSD's most frequent), then the rest of the lattice systems; pyxtal tells
# which ones the atom counts fit
SPACE_GROUPS = (14, 62, 2, 225, 15, 194, 12, 139, 166, 227, 221, 63, 11, 191, 129, 123, 71, 164, 148,
                187, 216, 59, 36, 186, 141, 74, 136, 229, 160, 167, 1)  # fmt: skip
# a relaxed structure outside these is an exploded (or collapsed) relaxation, not a crystal
VOLUME_PER_ATOM = (2.0, 150.0)  # Å³
ENERGY_PER_ATOM = (-20.0, 10.0)  # eV


@dataclass(frozen=True)
class Found:
    """What the search found for one composition: the lowest relaxed energy (CHGNet's, eV/atom, before
    references and corrections; NaN when no trial survived, with ``reason``), its structure as CIF text,
    its space group and volume, and how many trials ran and finished."""

    formula: str
    energy_per_atom: float
    cif: str
    spacegroup: str
    volume_per_atom: float
    trials: int  # relaxations that finished and passed the sanity checks
    attempted: int  # trials started (fewer than asked when the budget ran out)
    seconds: float
    reason: str = ""


def check_composition(formula: str) -> tuple[str, tuple[tuple[str, int], ...]]:
    """The reduced formula and its integer counts; ``FormulaError`` / ``VerifyError`` naming the formula
    and the reason (unparseable, an element the potential does not know, too many atoms)."""
    comp = parse_formula(formula)
    unknown = [el.symbol for el in comp if el.Z > POTENTIAL_ELEMENTS]
    if unknown:
        raise VerifyError(f"formula {formula!r}: {', '.join(unknown)} unknown to the potential (CHGNet knows "
                          f"H to {Element.from_Z(POTENTIAL_ELEMENTS).symbol})", field="formula")  # fmt: skip
    reduced = Composition(comp.get_integer_formula_and_factor(max_denominator=60)[0])
    counts = tuple((el.symbol, round(reduced[el])) for el in reduced)
    if sum(n for _, n in counts) > MAX_FORMULA_ATOMS:
        atoms = sum(n for _, n in counts)
        raise VerifyError(f"formula {formula!r}: {atoms} atoms per formula unit (the search takes at most "
                          f"{MAX_FORMULA_ATOMS})", field="formula")  # fmt: skip
    return reduced.reduced_formula, counts


@functools.cache
def potential(device: str = "cpu"):
    """CHGNet's pretrained model (shipped in its wheel: nothing is downloaded), loaded once per process."""
    require_extra()
    from chgnet.model import CHGNet

    with contextlib.redirect_stdout(io.StringIO()):  # CHGNet prints where it runs; our output is a table
        return CHGNet.load(verbose=False, use_device=device)


@functools.cache
def _optimizer(device: str):
    from chgnet.model import StructOptimizer

    with contextlib.redirect_stdout(io.StringIO()):
        return StructOptimizer(model=potential(device), optimizer_class="FIRE", use_device=device,
                               on_isolated_atoms="ignore")  # fmt: skip


def default_device() -> str:
    """``cuda`` when torch sees a GPU, else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def relax(structure, options: VerifyOptions, device: str = "cpu") -> tuple[float, object, str]:
    """Relax a pymatgen ``Structure`` (cell and positions, FIRE, at most ``options.steps``): its energy
    per atom, the relaxed structure, and why it is not usable ("" when it is)."""
    optimizer = _optimizer(device)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = optimizer.relax(structure, fmax=options.fmax, steps=options.steps, relax_cell=True,
                                     verbose=False)  # fmt: skip
    except Exception as err:  # a random start can break the graph or the cell filter: one trial lost
        return math.nan, None, f"relaxation failed ({type(err).__name__}: {str(err)[:80]})"
    final = result["final_structure"]
    energy = float(result["trajectory"].energies[-1]) / len(final)
    volume = final.volume / len(final)
    if not math.isfinite(energy) or not ENERGY_PER_ATOM[0] < energy < ENERGY_PER_ATOM[1]:
        return math.nan, None, f"relaxation exploded (energy {energy:.3g} eV/atom)"
    if not VOLUME_PER_ATOM[0] < volume < VOLUME_PER_ATOM[1]:
        return math.nan, None, f"relaxation exploded (volume {volume:.3g} Å³/atom)"
    return energy, final, ""


def _random_structure(counts: tuple[tuple[str, int], ...], z: int, rng: np.random.Generator):
    """A pyxtal random crystal of ``z`` formula units in a space group the counts fit (drawn from
    ``SPACE_GROUPS``, P1 last), or None."""
    from pyxtal import pyxtal

    species = [symbol for symbol, _ in counts]
    numbers = [n * z for _, n in counts]
    groups = list(SPACE_GROUPS[:-1])
    rng.shuffle(groups)
    for group in [*groups[:12], 1]:
        crystal = pyxtal()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                crystal.from_random(3, group, species, numbers, random_state=int(rng.integers(2**31)))
        except Exception:  # the counts do not fit the group's Wyckoff positions, or no placement found
            continue
        if crystal.valid:
            return crystal.to_pymatgen()
    return None


def search(formula: str, options: VerifyOptions = DEFAULT_OPTIONS, device: str = "cpu") -> Found:
    """The structure search of one composition (see the module docstring). Trials cycle the formula units
    1..Z (Z: the most whose cell holds ``options.max_cell_atoms`` atoms); each draws its space group.
    Raises for a bad formula; a trial that fails is counted and its reason kept."""
    from pymatgen.io.cif import CifWriter
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    require_extra()
    reduced, counts = check_composition(formula)
    started = time.perf_counter()
    per_unit = sum(n for _, n in counts)
    z_max = max(1, options.max_cell_atoms // per_unit)
    # the seed and the formula fix every trial: the same search on every machine and in every worker
    rng = np.random.default_rng([options.seed, zlib.crc32(reduced.encode())])
    best: tuple[float, object] | None = None
    reasons: list[str] = []
    attempted = finished = 0
    for trial in range(options.trials):
        spent = time.perf_counter() - started
        if trial and spent + spent / trial > options.budget_s:  # the next trial would pass the budget
            break
        attempted += 1
        structure = _random_structure(counts, 1 + trial % z_max, rng)
        if structure is None:
            reasons.append("pyxtal found no random crystal")
            continue
        energy, final, reason = relax(structure, options, device)
        if reason:
            reasons.append(reason)
            continue
        finished += 1
        if best is None or energy < best[0]:
            best = (energy, final)
    seconds = time.perf_counter() - started
    if best is None:
        why = "; ".join(sorted(set(reasons))) or "no trial ran"
        return Found(reduced, math.nan, "", "", math.nan, 0, attempted, seconds, f"every trial failed: {why}")
    energy, final = best
    try:
        analyzer = SpacegroupAnalyzer(final, symprec=0.1)
        spacegroup = f"{analyzer.get_space_group_symbol()} ({analyzer.get_space_group_number()})"
    except Exception:  # spglib can fail on a distorted cell; the structure is still the result
        spacegroup = "P1 (1)"
    return Found(reduced, energy, str(CifWriter(final)), spacegroup, final.volume / len(final), finished,
                 attempted, seconds)  # fmt: skip
