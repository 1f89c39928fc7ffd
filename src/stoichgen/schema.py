"""The columns of every table stoichgen writes, written once: name, dtype and meaning.

``GUIDED_COLUMNS`` for the guided search (the default method), ``PAPER_COLUMNS`` for the paper's
pipeline, ``SCREEN_COLUMNS`` for ``stoichgen screen``. Frames are built from them (order and dtypes), an
empty result has the same columns, and the README's tables are ``markdown_table(...)`` (a test keeps
them equal).

>>> [c.name for c in PAPER_COLUMNS][:5]
['target', 'draw', 'raw_composition', 'composition', 'formula']
>>> empty_frame(GUIDED_COLUMNS).dtypes["charge_neutral"]
dtype('bool')
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Column:
    name: str
    dtype: type
    meaning: str


# both methods: the target, and the nearest known composition of each row
TARGET = Column("target", float, "the requested property value")
NEAREST_COLUMNS: tuple[Column, ...] = (
    Column("nearest_formula", object, "the nearest composition of the generator's training split "
           "(Euclidean, x^b of the row in the generator's normalised units)"),
    Column("nearest_property", float, "its property"),
    Column("nearest_distance", float, "its distance"),
)  # fmt: skip
GUIDED_COLUMNS: tuple[Column, ...] = (
    TARGET,
    Column("rank", np.int64, "1 = best score at this target"),
    Column("formula", object, "reduced integer formula"),
    Column("composition", object, "atomic fractions, paper style (`Li0.29O0.57Mn0.14`)"),
    Column("n_elements", np.int64, "number of elements"),
    Column("n_atoms", np.int64, "atoms per reduced formula unit"),
    Column("predicted_property", float, "the mean of the surrogate members that did not select the row (the "
           "others rank; against the winner's curse)"),
    Column("uncertainty", float, "their spread (standard deviation, calibrated so that about 68 % of "
           "held-out errors lie within it)"),
    Column("e_above_hull", float, "eV/atom above the convex hull of the known compounds (the whole bundled "
           "set) at the predicted formation energy (negative: below it; NaN unless the property is a "
           "formation energy)"),
    Column("e_above_hull_uncertainty", float, "its uncertainty: the surrogate's spread (the hull is fixed, "
           "so one eV/atom of formation energy is one of e_above_hull)"),
    Column("decomposition", object, "the competing known products at that energy (`Li2O + MnO2`)"),
    Column("p_stable", float, "the probability that the candidate lies at or below the known hull: a normal "
           "with mean e_above_hull and sd e_above_hull_uncertainty, recalibrated (isotonic) on the surrogate "
           "run's held-out rows; NaN without a hull"),
    Column("p_in_range", float, "with a target range [A, B] (`--target-min`, `--target-max`): the "
           "probability that the property lies in it, a normal with mean predicted_property and sd "
           "uncertainty; NaN without a range"),
    Column("score", float, "what the rows are ranked by, lower is better: abs(mean − target) (with the "
           "stability objective: the predicted e_above_hull; with a target range: 1 − P(in range), without "
           "the spread term) + spread + 0.3 × share of element pairs no training compound holds + 0.003 × "
           "n_atoms + 0.02 × n_elements + 0.1 × −log10(oxidation_probability); mean and spread are the "
           "ranking members' (3 of the surrogate's 5), not the reported columns'"),
    Column("source", object, "where the element set came from: `generator` (the CondGAN's samples at "
           "the target), `substitution` (a known compound near the target with one element replaced), "
           "`system` (every set of a small chemical system), `random`, or `move` (a neighbour of a good "
           "set found by the search)"),
    Column("charge_neutral", bool, "exactly neutral for one oxidation state per element of the run's "
           "table (`oxidation`: common, icsd or all), cations less electronegative than anions"),
    Column("intermetallic", bool, "metals only, without such an assignment (accepted as an alloy, as SMACT "
           "does)"),
    Column("oxidation_states", object, "the most likely neutral assignment, one state per element "
           "(`Li+ P5+ O2-`); empty for an intermetallic"),
    Column("oxidation_probability", float, "its likelihood: the product over elements of the share of the "
           "element's ionic occurrences in the ICSD with that state (pymatgen's table); NaN for an "
           "intermetallic"),
    Column("smact_valid", bool, "SMACT's `smact_validity` on `formula` (False, unchecked, when SMACT would "
           "try more than 20,000 oxidation-state combinations)"),
    *NEAREST_COLUMNS,
    Column("novel", bool, "`formula` is not a known compound: not in the model's data set, any split (the "
           "bundled MP set for the bundled models), nor in `--reference` when given"),
    Column("not_in_training", bool, "`formula` is not in the model's training split (the benchmarks' "
           "novelty; all rows unless `include_known`): a False `novel` beside a True here is a known "
           "compound the model never saw, rediscovered"),
)  # fmt: skip
PAPER_COLUMNS: tuple[Column, ...] = (
    TARGET,
    Column("draw", np.int64, "index of the draw (per target) the row came from"),
    Column("raw_composition", object, "the thresholded, renormalised generated fractions before balancing "
           "(paper style, `Li0.29O0.58Mn0.13`)"),
    Column("composition", object, "the same after balancing"),
    Column("formula", object, "reduced integer formula of the balanced fractions (parseable by pymatgen)"),
    Column("n_elements", np.int64, "number of elements"),
    Column("valence_raw", float, "min over oxidation-state assignments of abs(vᵀx) before balancing (NaN for "
           "elements without oxidation states, or too many assignments to measure)"),
    Column("valence", float, "the same after balancing"),
    Column("charge_neutral", bool, "valence below 1e-3 after balancing; with `--balance exact`, `formula` "
           "has at most `--max-atoms` atoms and is exactly neutral (pymatgen's check agrees)"),
    Column("unbalanceable", bool, "no neutral composition keeps every element at or above the threshold"),
    Column("balance_iterations", np.int64, "MH rounds the row took (0 for other methods)"),
    Column("balance_skipped", bool, "more than 8 elements (the most of any MP composition): left as "
           "generated, only measured"),
    Column("smact_valid", bool, "SMACT's `smact_validity` on `formula` (False, unscreened, when SMACT would "
           "try more than 20,000 oxidation-state combinations)"),
    Column("predicted_property", float, "the CondGAN's own P head on the generated vector itself (after "
           "constraint masking, before thresholding), as in the paper's Table 3; NaN for a CondVAE"),
    Column("predicted_property_balanced", float, "P of the balanced composition, x^p recomputed from it"),
    *NEAREST_COLUMNS,
    Column("novel", bool, "`formula` is not a known compound: not in the model's data set, any split, nor "
           "in `--reference` when given"),
    Column("not_in_training", bool, "`formula` is not a reduced formula of the training split (the "
           "paper's novelty, Table 2)"),
)  # fmt: skip
NAMES: tuple[str, ...] = tuple(c.name for c in PAPER_COLUMNS)


SCREEN_COLUMNS: tuple[Column, ...] = (
    Column("formula", object, "reduced formula (elements in order of electronegativity)"),
    Column("system", object, "its chemical system, `Fe-Li-O`"),
    Column("n_elements", np.int64, "number of elements"),
    Column("n_atoms", float, "atoms per reduced formula unit"),
    Column("predicted_property", float, "the mean of the surrogate members that do not rank (`score`)"),
    Column("uncertainty", float, "their calibrated spread"),
    Column(
        "e_above_hull",
        float,
        "eV/atom above the hull of the known compounds at the predicted energy "
        "(NaN unless the surrogate's property is the bundled set's formation energy)",
    ),  # fmt: skip
    Column("p_stable", float, "the probability of lying at or below the known hull (normal, sd uncertainty, "
           "recalibrated as generate's); NaN without a hull"),
    Column(
        "score",
        float,
        "the guided search's score, lower is better (NaN with neither a target nor the "
        "stability objective; inf for the stability objective where the hull knows no compound of a "
        "pair of the elements)",
    ),  # fmt: skip
    Column("charge_neutral", bool, "neutral for one oxidation state per element of the chosen table "
           "(`--oxidation`), cations less electronegative than anions"),
    Column("oxidation_states", object, "the most likely neutral assignment (`Li+ P5+ O2-`); empty for metals "
           "only"),
    Column("oxidation_probability", float, "its likelihood (pymatgen's ICSD occurrences; see `generate`)"),
    Column(
        "smact_valid",
        bool,
        "SMACT's validity (neutral for SMACT's states with cations less "
        "electronegative than anions, or metals only)",
    ),  # fmt: skip
    Column("known", bool, "the reduced formula is in the surrogate's data set"),
    Column("nearest_formula", object, "the nearest compound of that data set (normalised x^b)"),
    Column("nearest_property", float, "its property"),
    Column("nearest_distance", float, "its distance"),
)
ERROR_COLUMN = Column("error", object, "why a row of --candidates could not be scored (empty otherwise)")


def empty_frame(columns: tuple[Column, ...] = PAPER_COLUMNS) -> pd.DataFrame:
    """A frame with every column and no rows."""
    return pd.DataFrame({c.name: pd.Series(dtype=c.dtype) for c in columns})


def frame(values: dict[str, object], columns: tuple[Column, ...] = PAPER_COLUMNS) -> pd.DataFrame:
    """A frame of ``values`` (one entry per column, in any order) with the schema's order and dtypes."""
    names = [c.name for c in columns]
    missing = [name for name in names if name not in values]
    extra = sorted(set(values) - set(names))
    if missing or extra:
        raise RuntimeError(f"internal error: output columns missing {missing}, unexpected {extra}")
    return pd.DataFrame({c.name: np.asarray(values[c.name], dtype=c.dtype) for c in columns})


def markdown_table(columns: tuple[Column, ...] = PAPER_COLUMNS) -> str:
    """The README's table of output columns."""
    rows = [f"| `{c.name}` | {np.dtype(c.dtype).name} | {c.meaning} |" for c in columns]
    return "\n".join(["| column | type | meaning |", "|---|---|---|", *rows])


VERIFY_COLUMNS: tuple[Column, ...] = (
    Column("verified_formation_energy", float, "formation energy (eV/atom) of the lowest structure the "
           "search found, CHGNet's energy less the elemental references plus the fitted anion shift (the "
           "bundled data's footing); NaN with a reason in verify_error"),
    Column("verified_e_above_hull", float, "eV/atom above the hull of the bundled compounds at that energy "
           "(negative: below it)"),
    Column("verified_decomposition", object, "the competing known products at that energy"),
    Column("verified_spacegroup", object, "space group of that structure (symprec 0.1 Å), `Fm-3m (225)`"),
    Column("verified_volume_per_atom", float, "its volume per atom (Å³)"),
    Column("verified_trials", np.int64, "relaxations that finished (of --trials; fewer when the time budget "
           "ran out or a trial exploded)"),
    Column("verified_cif", object, "the CIF file of that structure (empty without --cif-dir)"),
    Column("verified_seconds", float, "seconds the search took (read from the cache: its first run's)"),
    Column("verify_error", object, "why a row has no verified energy (a bad formula, an element the "
           "potential does not know, every relaxation exploded, outside --top); empty otherwise"),
)  # fmt: skip
