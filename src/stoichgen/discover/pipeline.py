"""The user's main job: candidate compositions at a target property (``Generator``).

``method="guided"`` (default): the guided search of ``discover.guided`` / ``discover.search``.
``method="paper"``: the paper's pipeline on a CondGAN or CondVAE run: sample raw vectors at the target,
enforce element constraints, decode with TH = 0.03 (Sec. 5.2), balance the valence (MH by default,
Sec. 4), annotate with SMACT validity, P(x~) and the nearest training composition (Sec. 6).

>>> gen = Generator.default()
>>> df = gen.generate(-2.0, n=8, require="O", exclude="Pb,Hg,Cd", seed=0, method="paper")
>>> len(df), bool(df["formula"].str.contains("O").all())
(8, True)

Paper method constraints never leak: disallowed x^b columns are zeroed before thresholding; rows that
decode empty, lack a required element, exceed ``max_elements`` (or, with ``neutral_only``, stay not
neutral) are redrawn with fresh noise, in at most ``max_rounds`` rounds of at most ``MAX_ROUND_DRAWS``
vectors (``max(100 n, 10,000)`` per target in all). Rows still unfilled are dropped with a
``GenerateWarning`` that says why; output is re-checked on balanced fractions and formulas.
``df.attrs`` counts ``redrawn`` (and why), ``dropped`` and ``duplicates_removed``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from stoichgen.chem.balance import (
    BALANCE_METHODS,
    DEFAULT_MAX_ATOMS,
    MAX_BALANCE_ELEMENTS,
    MAX_EXACT_ATOMS,
    balance_valence,
)
from stoichgen.chem.composition import (
    DEFAULT_THRESHOLD,
    Vocabulary,
    fraction_dicts,
    integer_formula,
    paper_string,
    threshold_fractions,
)
from stoichgen.chem.hull import Hull
from stoichgen.chem.oxidation import MAX_ASSIGNMENTS, OXIDATION_TABLES, affordable_rows
from stoichgen.chem.screening import screen_formulas
from stoichgen.discover import schema
from stoichgen.discover.constraints import Constraints
from stoichgen.discover.guided import (
    bundled_surrogate_for,
    check_objective,
    generate_guided,
    refuse_paper_options,
)
from stoichgen.discover.reference import Reference, load_reference
from stoichgen.discover.search import Chemistry
from stoichgen.discover.stability import hull_of
from stoichgen.errors import (
    SEED_MAX,
    ExtrapolationWarning,
    GenerateError,
    GenerateWarning,
    check_choice,
    check_int,
    check_number,
    check_targets,
)
from stoichgen.nearest import NearestIndex
from stoichgen.predict import Sampler, Surrogate
from stoichgen.run import CHECKPOINT, bundled_run_dir

DEFAULT_MODEL = "cgan-bp"  # resources/models/<name>/: the bundled default run
METHODS = ("guided", "paper")
DEFAULT_MAX_ROUNDS = 10
# MH iterations per chain for interactive generation (the paper's reproduction uses the authors' 10,000)
GENERATE_MAX_ITERATIONS = 3_000
MAX_ROWS = 100_000  # targets x n per call: bounded memory and minutes of work, not hours
MAX_ROUND_DRAWS = 262_144  # vectors drawn in one redraw round (about 300 MB for x^bp)
MAX_ITERATIONS = 100_000  # MH iterations per chain


def _derived_seed(*entropy: int) -> int:
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


class Generator:
    """A trained CondGAN or CondVAE run, ready to generate annotated compositions at target properties.

    Caches what is costly on the instance: the training reference (``reference.npz``), its
    nearest-neighbour index and the set of training formulas.
    """

    def __init__(
        self,
        sampler: Sampler,
        run_dir: Path | str | None = None,
        reference: Reference | None = None,
        surrogate: Surrogate | None = None,
        formation_energy: bool = False,
    ):
        self.sampler = sampler
        self.run_dir = None if run_dir is None else Path(run_dir)
        self._reference = reference
        self._nearest: NearestIndex | None = None
        self._chemistry: Chemistry | None = None
        self._hull: Hull | None = None
        if surrogate is not None and surrogate.vocabulary != sampler.vocabulary:
            raise GenerateError(
                f"the surrogate {surrogate.record.source} knows {len(surrogate.vocabulary)} elements, the "
                f"generator {len(sampler.vocabulary)}: train both on the same data"
            )
        self.surrogate = surrogate
        self.formation_energy = formation_energy or sampler.record.data.csv is None  # MP's, or declared

    @classmethod
    def from_run(
        cls, path: Path | str, surrogate: Path | str | None = None, formation_energy: bool = False
    ) -> Generator:
        """Load a generator run directory (or its ``checkpoint.pt``) and, for the guided method, a surrogate
        run (default: the bundled one, when the generator was trained on the same data); ``RunError`` if
        missing or not a valid run."""
        path = Path(path)
        sampler = Sampler.from_run(path)
        ensemble = Surrogate.from_run(surrogate) if surrogate is not None else bundled_surrogate_for(sampler)
        return cls(sampler, path if path.is_dir() else path.parent, None, ensemble, formation_energy)

    @classmethod
    def default(cls) -> Generator:
        """The bundled models: CondGAN on x^bp and the surrogate ensemble, trained on the MP set (split 0)."""
        run_dir = bundled_run_dir(DEFAULT_MODEL)
        if not (run_dir / CHECKPOINT).is_file():
            raise GenerateError("no bundled default model; give a run directory (model=RUN_DIR)")
        return cls.from_run(run_dir)

    @property
    def hull(self) -> Hull | None:
        """The hull of every compound of the run's data when its property is a formation energy."""
        if self._hull is None and self.formation_energy:
            self._hull = hull_of(self.sampler.record.load_data())
        return self._hull

    @property
    def chemistry(self) -> Chemistry:
        """What the guided search learns from the training split (cached)."""
        if self._chemistry is None:
            ref = self.reference
            self._chemistry = Chemistry.from_fractions(self.vocabulary.symbols, ref.x_b.toarray(), ref.y)
        return self._chemistry

    @property
    def vocabulary(self) -> Vocabulary:
        return self.sampler.vocabulary

    @property
    def property_range(self) -> tuple[float, float]:
        return self.sampler.property_range

    @property
    def reference(self) -> Reference:
        if self._reference is None:
            self._reference = load_reference(self.run_dir, self.sampler.record)
        return self._reference

    @property
    def nearest(self) -> NearestIndex:
        if self._nearest is None:
            self._nearest = NearestIndex(self.reference.x_b, self.sampler.normaliser, y=self.reference.y)
        return self._nearest

    def generate(
        self,
        target: float | Sequence[float] | None,
        n: int = 256,
        *,
        method: str = "guided",
        objective: str = "target",
        include_known: bool = False,
        max_e_hull: float | None = None,
        balance: str = "mh",
        elements: str | Iterable[str] | None = None,
        require: str | Iterable[str] | None = None,
        exclude: str | Iterable[str] | None = None,
        max_elements: int | None = None,
        unique: bool = False,
        seed: int = 0,
        oxidation: str = "common",
        threshold: float = DEFAULT_THRESHOLD,
        neutral_only: bool = False,
        max_rounds: int = DEFAULT_MAX_ROUNDS,
        max_iterations: int = GENERATE_MAX_ITERATIONS,
        max_atoms: int = DEFAULT_MAX_ATOMS,
    ) -> pd.DataFrame:
        """``n`` compositions per target, one row each.

        ``method="guided"`` (default): ranked, valid, unique small formulas (``schema.GUIDED_COLUMNS``);
        ``include_known`` lets training formulas through; ``max_e_hull`` keeps rows at or below it (a
        formation-energy property only). ``balance`` .. ``max_iterations`` are the paper method's.
        ``method="paper"``: rows in draw order (``schema.PAPER_COLUMNS``); ``balance``: ``"none"``, ``"mh"``
        (Sec. 4) or ``"exact"``; ``unique``: first row per (target, formula); ``neutral_only``: also
        redraw rows left not neutral; ``max_iterations``: MH iterations per chain (authors: 10,000).
        Both: ``elements`` (only these), ``require``, ``exclude`` as ``"Li,O"`` or a list;
        ``max_elements``; ``max_atoms`` (largest formula unit); targets outside the training range warn
        (``ExtrapolationWarning``). The same inputs and ``seed`` give the same rows.
        """
        stability = objective != "target" and check_objective(
            objective, method, self.hull is not None, self.sampler.record.data
        )
        targets = np.array([np.nan]) if stability and target is None else check_targets(target)
        n = check_int(n, "n", 1, MAX_ROWS)
        if len(targets) * n > MAX_ROWS:
            raise GenerateError(
                f"{len(targets)} targets x n={n} is {len(targets) * n:,} rows; at most {MAX_ROWS:,} per call "
                "(call again with another seed for more)",
                field="n",
            )
        seed = check_int(seed, "seed", 0, SEED_MAX)
        max_rounds = check_int(max_rounds, "max_rounds", 0, 1000)
        max_iterations = check_int(max_iterations, "max_iterations", 1, MAX_ITERATIONS)
        max_atoms = check_int(max_atoms, "max_atoms", 2, MAX_EXACT_ATOMS)
        check_choice(method, METHODS, "method", error=GenerateError)
        if method == "guided":
            refuse_paper_options({
                "balance": balance != "mh", "oxidation": oxidation != "common",
                "threshold": threshold != DEFAULT_THRESHOLD, "neutral_only": neutral_only,
                "max_rounds": max_rounds != DEFAULT_MAX_ROUNDS, "unique": unique,
                "max_iterations": max_iterations != GENERATE_MAX_ITERATIONS,
            }, self.surrogate)  # fmt: skip
            constraints = Constraints.resolve(self.vocabulary, elements, require, exclude, max_elements)
            if not stability:
                self._warn_extrapolation(targets)
            if max_e_hull is not None and self.hull is None:
                record = self.sampler.record
                raise GenerateError(f"max_e_hull needs a formation energy; {record.data.describe()} gives "
                                    f"{record.property_name!r}", field="max_e_hull")  # fmt: skip
            frame = generate_guided(
                self.surrogate, self.chemistry, self.sampler, self.reference, self.nearest, targets, n,
                constraints, seed, max_atoms, include_known, self.hull,
                None if max_e_hull is None else check_number(max_e_hull, "max_e_hull"), objective,
            )  # fmt: skip
            frame.attrs.update({"method": method, "targets": targets.tolist(), "n": n, "seed": seed,
                                "constraints": constraints.description, "max_atoms": max_atoms})  # fmt: skip
            return frame
        check_choice(balance, BALANCE_METHODS, "balance", "balancing method", GenerateError)
        check_choice(oxidation, OXIDATION_TABLES, "oxidation", "oxidation table", GenerateError)
        if not 0 < check_number(threshold, "threshold") < 1:
            raise GenerateError(f"threshold must be a number in (0, 1), got {threshold!r}", field="threshold")
        constraints = Constraints.resolve(self.vocabulary, elements, require, exclude, max_elements)
        lo, hi = self.property_range
        self._warn_extrapolation(targets)
        options = {
            "method": balance,
            "oxidation": oxidation,
            "threshold": float(threshold),
            "max_iterations": max_iterations,
            "max_atoms": max_atoms,
        }
        first = self.sampler.sample(targets, n, seed).reshape(len(targets), n, -1)  # (T, n, D)
        per_target = []
        for t_index, t in enumerate(targets):
            draws = self._draw(
                t, t_index, n, first[t_index], seed, constraints, neutral_only, max_rounds, options
            )
            if draws.n_accepted < n:
                reasons = [
                    f"{draws.empty} decoded to nothing at threshold {options['threshold']:g}",
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
        frame = self._annotate(targets, per_target, constraints, seed, neutral_only, options)
        n_rows, skipped = len(frame), frame.attrs.get("balance_skipped", 0)
        if unique:
            frame = frame.drop_duplicates(subset=["target", "formula"], keep="first").reset_index(drop=True)
        frame.attrs.update(
            {
                "model": str(self.run_dir) if self.run_dir is not None else None,
                "targets": targets.tolist(),
                "n": n,
                "balance": balance,
                "oxidation": oxidation,
                "threshold": float(threshold),
                "max_iterations": max_iterations,
                "max_atoms": max_atoms,
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

    def _warn_extrapolation(self, targets: np.ndarray) -> None:
        lo, hi = self.property_range
        for t in targets:
            if not lo <= t <= hi:
                warnings.warn(
                    f"target {t:g} is outside the model's training range of "
                    f"{self.sampler.record.property_name} [{lo:.4g}, {hi:.4g}]: "
                    "this is extrapolation, expect compositions off target",
                    ExtrapolationWarning,
                    stacklevel=3,
                )

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
                batch = self.sampler.sample(target, size, _derived_seed(seed, t_index, round_))
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
                result = self._balance(batch[rows, :n_b], options, _derived_seed(seed, t_index, round_, 1))
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
        """``charge.balance`` fields for (M, V) raw fractions, plus ``balance_skipped``.

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
            valid = dict(zip(unique_formulas, screen_formulas(unique_formulas), strict=True))
        leaks = constraints.check_formulas(formulas)
        if leaks:
            raise RuntimeError(f"internal error: generated formulas break the constraints: {leaks[:5]}")
        predicted = np.full(len(x), np.nan)
        predicted_balanced = np.full(len(x), np.nan)
        if self.sampler.record.kind.predicts:
            predicted = self.sampler.predict_property(raw)
            predicted_balanced = self.sampler.predictor.predict_fractions(x)
        distance, index = self.nearest.query(x)
        reference = self.reference
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
                "novel": np.array([f not in reference.formula_set for f in formulas], dtype=bool),
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
