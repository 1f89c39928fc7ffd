"""The paper's method (``method="paper"``): sample raw vectors at the target from a CondGAN or CondVAE
run, enforce element constraints, decode with TH = 0.03 (Sec. 5.2), balance the valence (MH by default,
Sec. 4), annotate with SMACT validity, P(x~) and the nearest training composition (Sec. 6).

Constraints never leak: disallowed x^b columns are zeroed before thresholding; rows that decode empty,
lack a required element, exceed ``max_elements`` (or, with ``neutral_only``, stay not neutral) are
redrawn with fresh noise, in at most ``max_rounds`` rounds of at most ``MAX_ROUND_DRAWS`` vectors
(``max(100 n, 10,000)`` per target in all). Rows still unfilled are dropped with a ``GenerateWarning``
that says why; output is re-checked on balanced fractions and formulas. ``df.attrs`` counts
``redrawn`` (and why), ``dropped`` and ``duplicates_removed``.

>>> from stoichgen.discover.pipeline import Generator
>>> df = Generator.default().generate(-2.0, n=8, require="O", exclude="Pb,Hg,Cd", seed=0, method="paper")
>>> len(df), bool(df["formula"].str.contains("O").all())
(8, True)
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from stoichgen import schema
from stoichgen.chem.balance import MAX_BALANCE_ELEMENTS, balance_valence
from stoichgen.chem.composition import (
    Vocabulary,
    fraction_dicts,
    integer_formula,
    paper_string,
    threshold_fractions,
)
from stoichgen.chem.oxidation import MAX_ASSIGNMENTS, affordable_rows
from stoichgen.chem.validity import smact_valid_guarded
from stoichgen.discover.constraints import Constraints
from stoichgen.discover.options import PaperOptions
from stoichgen.errors import GenerateWarning

if TYPE_CHECKING:  # the generator owns the method; the method only borrows its models and reference
    from stoichgen.discover.pipeline import Generator

__all__ = ["MAX_ROUND_DRAWS", "PaperMethod", "derived_seed"]

MAX_ROUND_DRAWS = 262_144  # vectors drawn in one redraw round (about 300 MB for x^bp)


def derived_seed(*entropy: int) -> int:
    return int(np.random.SeedSequence(list(entropy)).generate_state(1, dtype=np.uint32)[0])


@dataclass
class _Draws:
    """Accepted rows of one target: masked raw vectors and, with ``neutral_only``, their balancing."""

    raw: list[np.ndarray] = field(default_factory=list)
    draw: list[np.ndarray] = field(default_factory=list)
    balanced: list[dict[str, np.ndarray]] = field(default_factory=list)
    n_drawn: int = 0
    n_accepted: int = 0
    empty: int = 0
    constraint: int = 0
    not_neutral: int = 0
    rounds: int = 0


class PaperMethod:
    """The paper's pipeline on a generator's sampler (see the module docstring)."""

    name = "paper"
    options_class = PaperOptions

    def __init__(self, generator: Generator):
        self.generator = generator

    @property
    def sampler(self):
        return self.generator.sampler

    @property
    def vocabulary(self) -> Vocabulary:
        return self.generator.vocabulary

    def generate(self, targets: np.ndarray, n: int, options: PaperOptions) -> pd.DataFrame:
        """``n`` rows per target in draw order (``schema.PAPER_COLUMNS``)."""
        o = options
        constraints = Constraints.resolve(self.vocabulary, o.elements, o.require, o.exclude, o.max_elements)
        lo, hi = self.generator.property_range
        self.generator.warn_extrapolation(targets)
        seed, neutral_only = o.seed, o.neutral_only
        balancing = {
            "method": o.balance,
            "oxidation": o.table,
            "threshold": float(o.threshold),
            "max_iterations": o.max_iterations,
            "max_atoms": o.max_atoms,
        }
        first = self.sampler.sample(targets, n, seed).reshape(len(targets), n, -1)  # (T, n, D)
        per_target = []
        for t_index, t in enumerate(targets):
            draws = self._draw(
                t, t_index, n, first[t_index], seed, constraints, neutral_only, o.max_rounds, balancing
            )
            if draws.n_accepted < n:
                reasons = [
                    f"{draws.empty} decoded to nothing at threshold {o.threshold:g}",
                    f"{draws.constraint} broke the constraints ({constraints.description})",
                ]
                if neutral_only:
                    reasons.append(f"{draws.not_neutral} were not charge neutral after balancing")
                warnings.warn(
                    f"target {t:g}: only {draws.n_accepted} of {n} rows filled after {draws.rounds} redraw "
                    f"rounds and {draws.n_drawn} draws, of which {', '.join(reasons)}; "
                    f"{n - draws.n_accepted} rows dropped (relax what rejected them, or raise max_rounds)",
                    GenerateWarning,
                    stacklevel=2,
                )
            per_target.append(draws)
        frame = self._annotate(targets, per_target, constraints, seed, neutral_only, balancing)
        n_rows, skipped = len(frame), frame.attrs.get("balance_skipped", 0)
        if o.unique:
            frame = frame.drop_duplicates(subset=["target", "formula"], keep="first").reset_index(drop=True)
        frame.attrs.update(
            {
                "model": str(self.generator.run_dir) if self.generator.run_dir is not None else None,
                "targets": targets.tolist(),
                "n": n,
                "balance": o.balance,
                "oxidation": o.table,
                "threshold": float(o.threshold),
                "max_iterations": o.max_iterations,
                "max_atoms": o.max_atoms,
                "seed": seed,
                "constraints": constraints.description,
                "n_drawn": sum(d.n_drawn for d in per_target),
                "redrawn": sum(d.empty + d.constraint + d.not_neutral for d in per_target),
                "redrawn_empty": sum(d.empty for d in per_target),
                "redrawn_constraint": sum(d.constraint for d in per_target),
                "redrawn_not_neutral": sum(d.not_neutral for d in per_target),
                "dropped": len(targets) * n - n_rows,
                "duplicates_removed": n_rows - len(frame),
                "extrapolation": bool(((targets < lo) | (targets > hi)).any()),
                "balance_skipped": skipped,
            }
        )
        return frame


    # -- drawing with constraints ----------------------------------------------------------------------

    def _draw(
        self, target, t_index, n, first, seed, constraints, neutral_only, max_rounds, options
    ) -> _Draws:
        """Accept rows in draw order until ``n`` pass; redraw rejected ones with fresh noise."""
        n_b = len(self.vocabulary)
        budget = max(100 * n, 10_000)
        draws, batch = _Draws(), first
        for round_ in range(max_rounds + 1):
            if round_:
                need = n - draws.n_accepted
                rate = draws.n_accepted / draws.n_drawn if draws.n_drawn else 0.0
                size = math.ceil(1.25 * need / rate) + 8 if rate > 0 else 4 * max(need, draws.n_drawn)
                size = min(size, budget - draws.n_drawn, MAX_ROUND_DRAWS)
                if size <= 0:
                    break
                batch = self.sampler.sample(target, size, derived_seed(seed, t_index, round_))
                draws.rounds = round_
            batch = np.array(batch, dtype=float)
            batch[:, :n_b][:, ~constraints.allowed] = 0.0  # disallowed elements cannot pass the threshold
            present = threshold_fractions(batch[:, :n_b], options["threshold"]) > 0
            nonempty = present.any(axis=1)
            valid = nonempty & constraints.satisfied(present)
            passed = valid.copy()
            balanced = None
            if neutral_only and valid.any():
                rows = np.flatnonzero(valid)
                result = self._balance(batch[rows, :n_b], options, derived_seed(seed, t_index, round_, 1))
                passed[rows] = result["charge_neutral"]
                balanced = (rows, result)
            accepted = np.flatnonzero(passed)[: n - draws.n_accepted]
            cut = accepted[-1] + 1 if len(accepted) == n - draws.n_accepted else len(batch)
            draws.empty += int((~nonempty[:cut]).sum())
            draws.constraint += int((nonempty & ~valid)[:cut].sum())
            draws.not_neutral += int((valid & ~passed)[:cut].sum())
            draws.raw.append(batch[accepted])
            draws.draw.append(draws.n_drawn + accepted)
            if balanced is not None:
                rows, result = balanced
                pick = np.searchsorted(rows, accepted)
                draws.balanced.append({name: result[name][pick] for name in _BALANCE_FIELDS})
            draws.n_drawn += int(cut)
            draws.n_accepted += len(accepted)
            if draws.n_accepted == n:
                break
        return draws

    def _balance(self, x_b: np.ndarray, options: dict, seed: int) -> dict[str, np.ndarray]:
        """``balance_valence``'s fields for (M, V) raw fractions, plus ``balance_skipped``.

        Rows with more than ``MAX_BALANCE_ELEMENTS`` elements are only measured, not balanced (MH chains
        on such junk rows can run all their iterations at seconds each); rows with more than
        ``MAX_ASSIGNMENTS`` oxidation-state assignments are not even measured (NaN valences).
        """
        kept = threshold_fractions(x_b, options["threshold"])
        present = kept > 0
        measurable = affordable_rows(present, self.vocabulary, options["oxidation"])
        balanceable = measurable & (present.sum(axis=1) <= MAX_BALANCE_ELEMENTS)
        fields = {
            "x": kept,
            "valence_raw": np.full(len(kept), np.nan),
            "valence": np.full(len(kept), np.nan),
            "charge_neutral": np.zeros(len(kept), dtype=bool),
            "unbalanceable": np.zeros(len(kept), dtype=bool),
            "iterations": np.zeros(len(kept), dtype=np.int64),
            "balance_skipped": ~balanceable if options["method"] != "none" else ~measurable,
        }
        for rows, method in ((balanceable, options["method"]), (measurable & ~balanceable, "none")):
            if rows.any():
                result = balance_valence(
                    x_b[rows],
                    self.vocabulary,
                    method,
                    oxidation=options["oxidation"],
                    threshold=options["threshold"],
                    max_iterations=options["max_iterations"],
                    max_atoms=options["max_atoms"],
                    rng=seed,
                )
                for name in _BALANCE_FIELDS[:-1]:
                    fields[name][rows] = getattr(result, name)
        if options["method"] == "exact":
            # Only measured, these rows are neutral within tol at best, not the exact small formula
            # that "exact" promises.
            fields["charge_neutral"] &= ~fields["balance_skipped"]
        return fields

    # -- annotation ------------------------------------------------------------------------------------

    def _annotate(self, targets, per_target, constraints, seed, neutral_only, options) -> pd.DataFrame:
        n_b, symbols = len(self.vocabulary), self.vocabulary.symbols
        counts = [d.n_accepted for d in per_target]
        if sum(counts) == 0:
            return schema.empty_frame()
        raw = np.vstack([r for d in per_target for r in d.raw])  # (M, D), masked, data units
        if neutral_only:
            pieces = [b for d in per_target for b in d.balanced]
            fields = {name: np.concatenate([b[name] for b in pieces]) for name in _BALANCE_FIELDS}
        else:
            fields = self._balance(raw[:, :n_b], options, seed)
        x = fields["x"]  # (M, V) balanced fractions
        skipped = int(fields["balance_skipped"].sum())
        if skipped:
            warnings.warn(
                f"{skipped} generated compositions have too many elements to balance (more than "
                f"{MAX_BALANCE_ELEMENTS}, or {MAX_ASSIGNMENTS:,} oxidation-state assignments): left as "
                "generated, balance_skipped=True",
                GenerateWarning,
                stacklevel=3,
            )
        present = x > 0
        if not (constraints.satisfied(present) & present.any(axis=1)).all():
            raise RuntimeError("internal error: a balanced composition breaks the constraints")
        kept = threshold_fractions(raw[:, :n_b], options["threshold"])
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="No Pauling electronegativity")
            balanced_fractions = fraction_dicts(x, symbols)
            formulas = [integer_formula(f) for f in balanced_fractions]
            unique_formulas = sorted(set(formulas))
            valid = dict(zip(unique_formulas, smact_valid_guarded(unique_formulas), strict=True))
        leaks = constraints.check_formulas(formulas)
        if leaks:
            raise RuntimeError(f"internal error: generated formulas break the constraints: {leaks[:5]}")
        predicted = np.full(len(x), np.nan)
        predicted_balanced = np.full(len(x), np.nan)
        if self.sampler.record.kind.predicts:
            predicted = self.sampler.predict_property(raw)
            predicted_balanced = self.sampler.predictor.predict_fractions(x)
        distance, index = self.generator.nearest.query(x)
        reference = self.generator.reference
        novel, not_in_training = self.generator.novelty(formulas)
        frame = schema.frame(
            {
                "target": np.repeat(targets, counts),
                "draw": np.concatenate([i for d in per_target for i in d.draw]).astype(np.int64),
                "raw_composition": [paper_string(f) for f in fraction_dicts(kept, symbols)],
                "composition": [paper_string(f) for f in balanced_fractions],
                "formula": formulas,
                "n_elements": present.sum(axis=1).astype(np.int64),
                "valence_raw": fields["valence_raw"].astype(float),
                "valence": fields["valence"].astype(float),
                "charge_neutral": fields["charge_neutral"].astype(bool),
                "unbalanceable": fields["unbalanceable"].astype(bool),
                "balance_iterations": fields["iterations"].astype(np.int64),
                "balance_skipped": fields["balance_skipped"].astype(bool),
                "smact_valid": np.array([valid[f] for f in formulas], dtype=bool),
                "predicted_property": predicted,
                "predicted_property_balanced": predicted_balanced,
                "nearest_formula": [reference.formulas[i] for i in index],
                "nearest_property": reference.y[index],
                "nearest_distance": distance,
                "novel": novel,
                "not_in_training": not_in_training,
            }
        )
        frame.attrs["balance_skipped"] = skipped
        return frame


_BALANCE_FIELDS = (
    "x",
    "valence_raw",
    "valence",
    "charge_neutral",
    "unbalanceable",
    "iterations",
    "balance_skipped",
)
