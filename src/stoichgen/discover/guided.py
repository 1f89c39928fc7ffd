"""The guided method of ``Generator.generate`` (the default): starting element sets from the generator,
substitution, the chemical system and random draws, a search over valid small formulas
(``discover.search``), ranked by the surrogate.

>>> import stoichgen
>>> df = stoichgen.Generator.default().generate(-2.0, n=4, seed=0)
>>> df.columns[:4].tolist(), len(df), bool(df["smact_valid"].all())
(['target', 'rank', 'formula', 'composition'], 4, True)
"""

from __future__ import annotations

import math
import sys
import warnings
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from tqdm import tqdm

from stoichgen import schema
from stoichgen.chem.composition import DEFAULT_THRESHOLD, paper_string, threshold_fractions
from stoichgen.chem.hull import HullResult, p_stable
from stoichgen.chem.validity import SMACT_METALS, smact_valid_guarded
from stoichgen.discover.constraints import Constraints
from stoichgen.discover.options import GuidedOptions
from stoichgen.discover.search import DEFAULT_MAX_ELEMENTS, Candidate, Search
from stoichgen.errors import GenerateError, GenerateWarning
from stoichgen.predict import DEFAULT_SURROGATE, Sampler, Surrogate
from stoichgen.run import CHECKPOINT, bundled_run_dir
from stoichgen.space.assign import TABLES
from stoichgen.space.formulas import fraction_keys
from stoichgen.space.score import p_in_range

if TYPE_CHECKING:  # the generator owns the method; the method only borrows its models and reference
    from stoichgen.discover.pipeline import Generator

__all__ = ["DEFAULT_SURROGATE", "GuidedMethod", "bundled_surrogate_for", "start_sets"]

HULL_REFILL = 4  # with max_e_hull: candidates drawn per row wanted, before the hull filter
GENERATOR_SEEDS = 256  # samples drawn from the generator per target for its element sets
RANDOM_SEEDS = 100  # random element sets per target
UNREACHED = 0.05  # with a target range: below this p_in_range for every row, the user is told


def start_sets(
    search: Search, sampler: Sampler | None, target: float, seed: int, rng: np.random.Generator
) -> dict[tuple[str, ...], str]:
    """Element sets to start from, each labelled with where it came from (first source wins)."""
    starts: dict[tuple[str, ...], str] = {}
    if sampler is not None and not np.isnan(target):  # the generator needs a target to sample at
        n_b = len(sampler.vocabulary)
        x = sampler.sample(target, GENERATOR_SEEDS, seed)[:, :n_b]
        present = threshold_fractions(x, DEFAULT_THRESHOLD) > 0  # (S, V)
        for row in np.unique(present, axis=0):
            picked = search.admissible([sampler.vocabulary.symbols[i] for i in np.flatnonzero(row)])
            if picked is not None:
                starts.setdefault(picked, "generator")
    for picked in search.substitution_sets(target):
        starts.setdefault(picked, "substitution")
    for picked in search.system_sets():
        starts.setdefault(picked, "system")
    for picked in search.random_sets(rng, RANDOM_SEEDS):
        starts.setdefault(picked, "random")
    return starts


def bundled_surrogate_for(sampler: Sampler) -> Surrogate | None:
    """The bundled surrogate when the generator was trained on the same data, else None."""
    bundled = bundled_run_dir(DEFAULT_SURROGATE)
    if not (bundled / CHECKPOINT).is_file():
        return None
    ensemble = Surrogate.from_run(bundled)
    same = ensemble.vocabulary == sampler.vocabulary and ensemble.record.data == sampler.record.data
    return ensemble if same else None


class GuidedMethod:
    """The guided search on a generator's surrogate, chemistry and reference (module docstring)."""

    name = "guided"
    options_class = GuidedOptions

    def __init__(self, generator: Generator):
        self.generator = generator

    def check(self, options: GuidedOptions) -> None:
        """Refuse what this generator cannot do: no surrogate, a hull objective without a formation
        energy."""
        generator = self.generator
        if generator.surrogate is None:
            raise GenerateError(
                "the guided method needs a surrogate trained on the generator's data (surrogate=RUN_DIR, "
                "from train --model surrogate); or use method 'paper'"
            )
        needs_hull = "objective" if options.objective == "stability" else "max_e_hull"
        if (options.objective == "stability" or options.max_e_hull is not None) and generator.hull is None:
            record = generator.sampler.record
            raise GenerateError(f"{needs_hull} needs a formation energy (this generator's "
                                f"{record.property_name!r} comes from {record.data.describe()})",
                                field=needs_hull)  # fmt: skip

    def generate(self, targets: np.ndarray, n: int, options: GuidedOptions) -> pd.DataFrame:
        """``n`` ranked candidates per target (columns ``schema.GUIDED_COLUMNS``). With a hull (the
        property is a formation energy) rows get their place on it; ``max_e_hull`` keeps only rows at or
        below that e_above_hull, drawing more candidates from the search to refill."""
        self.check(options)
        g = self.generator
        if options.needs_target:
            g.warn_extrapolation(targets)
        constraints = Constraints.resolve(g.vocabulary, options.elements, options.require, options.exclude,
                                          options.max_elements)  # fmt: skip
        if g.hull_given:  # the user's own known compounds must know every element a candidate may hold
            allowed = [g.vocabulary.symbols[i] for i in np.flatnonzero(constraints.allowed)]
            missing = [s for s in allowed if s not in g.hull.elements]
            if missing:
                more = f" and {len(missing) - 12} more" if len(missing) > 12 else ""
                shown = ", ".join(missing[:12]) + more
                raise GenerateError(f"the reference (known compounds) holds no compound of {shown}; restrict "
                                    f"elements to those it holds ({', '.join(sorted(g.hull.elements))}) or "
                                    "add compounds of them", field="reference")  # fmt: skip
        frame = _generate(g.surrogate, g, targets, n, constraints, options)
        frame.attrs.update({"method": self.name, "targets": targets.tolist(), "n": n,
                            "seed": options.seed, "constraints": constraints.description,
                            "max_atoms": options.max_atoms})  # fmt: skip
        if options.target_range is not None:
            frame.attrs["target_range"] = list(options.target_range)
            # from the mean and spread the rows report (the selection's own would carry its optimism)
            reported = frame["predicted_property"].to_numpy(), frame["uncertainty"].to_numpy()
            frame["p_in_range"] = p_in_range(*reported, options.target_range)
            if len(frame) and frame["p_in_range"].max() < UNREACHED:
                low, high = options.target_range
                warnings.warn(f"no candidate is likely in [{low:g}, {high:g}] (p_in_range at most "
                              f"{frame['p_in_range'].max():.2g}): the rows are ranked by the realism terms "
                              f"alone; the training range is [{g.property_range[0]:.4g}, "
                              f"{g.property_range[1]:.4g}]", GenerateWarning, stacklevel=3)  # fmt: skip
        return frame


def _start_target(target: float, target_range: tuple[float, float] | None) -> float:
    """Where the starting sets are drawn for a range: its middle, or its finite end when one is open.

    >>> _start_target(float("nan"), (-3.0, -2.0)), _start_target(float("nan"), (float("-inf"), -2.0))
    (-2.5, -2.0)
    """
    if target_range is None:
        return target
    low, high = target_range
    return (low + high) / 2 if np.isfinite(low) and np.isfinite(high) else (low if np.isfinite(low) else high)


def _fractions(candidates: list[Candidate], vocabulary) -> np.ndarray:
    """The candidates' x^b fractions. Shape (M, V)."""
    x = np.zeros((len(candidates), len(vocabulary)))  # (M, V)
    for row, c in enumerate(candidates):
        x[row, [vocabulary.index(s) for s in c.elements]] = np.asarray(c.counts) / sum(c.counts)
    return x


REACH = 0.05  # a target is out of reach when nothing scored comes within this share of the training range


def _warn_out_of_reach(search: Search, target: float, trained: tuple[float, float], where: str) -> None:
    """One warning when no formula the search scored is predicted near the target: the system's
    chemistry cannot reach it, and the rows are the closest it has (say so, with the closest value)."""
    means = [scores.mean for scores in search.scored.values() if len(scores.mean)]
    if not means:
        return
    values = np.concatenate(means)
    closest = float(values[np.argmin(np.abs(values - target))])
    if abs(closest - target) > REACH * (trained[1] - trained[0]):
        warnings.warn(f"target {target:g} is out of reach of this search space ({where}): the closest "
                      f"predicted value of any formula searched is {closest:.2f}", GenerateWarning,
                      stacklevel=4)  # fmt: skip


def _generate(
    surrogate: Surrogate,
    g: Generator,
    targets: np.ndarray,
    n: int,
    constraints: Constraints,
    options: GuidedOptions,
) -> pd.DataFrame:
    chemistry, sampler, reference, nearest, hull = g.chemistry, g.sampler, g.reference, g.nearest, g.hull
    seed, max_atoms, max_e_hull = options.seed, options.max_atoms, options.max_e_hull
    vocabulary = surrogate.vocabulary
    allowed = frozenset(vocabulary.symbols[i] for i in np.flatnonzero(constraints.allowed))
    required = tuple(vocabulary.symbols[i] for i in constraints.required)
    max_elements = constraints.max_elements or DEFAULT_MAX_ELEMENTS
    search = Search(
        surrogate.select_fractions_with_spread, chemistry, allowed, required, max_elements, max_atoms,
        options.include_known, hull if options.objective == "stability" else None, TABLES[options.table],
        target_range=options.target_range,
    )  # fmt: skip
    placed: dict[Candidate, HullResult] = {}

    def place(candidate: Candidate) -> HullResult:
        """The candidate on the known hull, at its predicted energy (queried once)."""
        if candidate not in placed:
            placed[candidate] = hull.query(candidate.formula, candidate.mean)
        return placed[candidate]

    found: list[tuple[float, int, Candidate]] = []
    progress = tqdm(targets, desc="guided search", unit="target", delay=2, disable=not sys.stderr.isatty())
    for t_index, target in enumerate(progress):
        rng = np.random.default_rng([seed, t_index])
        starts = start_sets(search, sampler, _start_target(float(target), options.target_range), seed, rng)
        if max_e_hull is None:
            candidates = search.find(float(target), n, starts)
        else:
            pool = search.find(float(target), HULL_REFILL * n, starts)
            # kept by the e_above_hull the rows will report (the reporting members' energy), so every row
            # returned shows e_above_hull <= max_e_hull
            reported, _ = surrogate.report_fractions_with_spread(_fractions(pool, vocabulary))
            shift = reported - np.array([c.mean for c in pool])
            kept = [place(c).e_above_hull + d <= max_e_hull for c, d in zip(pool, shift, strict=True)]
            candidates = [c for c, ok in zip(pool, kept, strict=True) if ok][:n]
        if len(candidates) < n:
            hull_limit = "" if max_e_hull is None else f", e_above_hull <= {max_e_hull:g}"
            which = "" if math.isnan(target) else f"target {target:g}: "  # NaN: the stability objective
            warnings.warn(
                f"{which}the search space ({constraints.description}, at most {max_atoms} atoms, "
                f"{max_elements} elements{hull_limit}) held only {len(candidates)} of {n} candidates",
                GenerateWarning,
                stacklevel=3,
            )
        if not math.isnan(target) and options.target_range is None:
            _warn_out_of_reach(search, float(target), g.property_range, constraints.description)
        found += [(float(target), rank, c) for rank, c in enumerate(candidates, start=1)]
    if not found:
        return schema.empty_frame(schema.GUIDED_COLUMNS)
    cands = [c for _, _, c in found]
    x = _fractions(cands, vocabulary)  # (M, V)
    distance, index = nearest.query(x)
    neutral = np.array([bool(c.states) for c in cands])  # an assignment of the table: neutral
    intermetallic = ~neutral & np.array([set(c.elements) <= SMACT_METALS for c in cands])
    on_hull = [place(c) for c in cands] if hull is not None else []
    e_hull = [r.e_above_hull for r in on_hull] if on_hull else [np.nan] * len(cands)
    # reported by the members that did not select (predict.MemberSplit: the winner's curse); the hull is
    # fixed, so e_above_hull moves with the energy and the decomposition stays
    mean, spread = surrogate.report_fractions_with_spread(x)  # (M,), (M,)
    e_hull = np.asarray(e_hull, dtype=float) + mean - np.array([c.mean for c in cands])
    e_hull_spread = spread if hull is not None else np.full(len(cands), np.nan)
    novel, _ = g.novelty([c.formula for c in cands])
    not_in_training = [key not in chemistry.known for key in fraction_keys(x)]  # what the search lets through
    return schema.frame(
        {
            "target": [t for t, _, _ in found],
            "rank": [r for _, r, _ in found],
            "formula": [c.formula for c in cands],
            "composition": [
                paper_string({s: x[r, vocabulary.index(s)] for s in c.elements}) for r, c in enumerate(cands)
            ],  # fmt: skip
            "n_elements": [len(c.elements) for c in cands],
            "n_atoms": [sum(c.counts) for c in cands],
            "predicted_property": mean,
            "uncertainty": spread,
            "e_above_hull": e_hull,
            "e_above_hull_uncertainty": e_hull_spread,
            "p_stable": _p_stable(surrogate, e_hull, e_hull_spread) if hull is not None else np.nan,
            "decomposition": [r.decomposition for r in on_hull] if on_hull else [""] * len(cands),
            "score": [c.score for c in cands],
            "p_in_range": np.full(len(cands), np.nan),  # GuidedMethod.generate: from the reported columns
            "source": [c.source for c in cands],
            "charge_neutral": neutral,
            "intermetallic": intermetallic,
            "oxidation_states": [c.oxidation_states for c in cands],
            "oxidation_probability": [c.probability for c in cands],
            "smact_valid": smact_valid_guarded([c.formula for c in cands]),
            "nearest_formula": [reference.formulas[i] for i in index],
            "nearest_property": reference.y[index],
            "nearest_distance": distance,
            "novel": novel,
            "not_in_training": not_in_training,
        },
        schema.GUIDED_COLUMNS,
    )


def _p_stable(surrogate: Surrogate, e_hull: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """P(at or below the hull): the normal model's, recalibrated on the run's held-out rows (predict)."""
    return surrogate.stability_calibration.apply(p_stable(e_hull, spread))
