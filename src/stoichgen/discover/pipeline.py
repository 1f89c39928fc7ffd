"""The user's main job: candidate compositions at a target property (``Generator``).

A ``Generator`` holds what generation needs (a generator run's sampler, a surrogate ensemble, the
training reference, its nearest-neighbour index, the known hull) and one object per method:
``GuidedMethod`` (``method="guided"``, the default: ``discover.guided``) and ``PaperMethod``
(``method="paper"``: ``discover.paper``), each with its frozen options dataclass
(``discover.options``). ``Generator.generate(target, n, method=..., **options)`` is the front.

>>> gen = Generator.default()
>>> df = gen.generate(-2.0, n=8, require="O", exclude="Pb,Hg,Cd", seed=0, method="paper")
>>> len(df), bool(df["formula"].str.contains("O").all())
(8, True)
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stoichgen.chem.composition import Vocabulary
from stoichgen.chem.hull import Hull, reduced_formula
from stoichgen.discover.guided import GuidedMethod, bundled_surrogate_for
from stoichgen.discover.options import DEFAULT_MODEL, MAX_GENERATE_ROWS, METHODS, build_options
from stoichgen.discover.paper import PaperMethod
from stoichgen.discover.reference import Reference, load_reference
from stoichgen.errors import ExtrapolationWarning, GenerateError, check_choice, check_int, check_targets
from stoichgen.nearest import NearestIndex
from stoichgen.predict import Sampler, Surrogate
from stoichgen.run import CHECKPOINT, bundled_run_dir
from stoichgen.space.score import Chemistry, hull_of

__all__ = ["DEFAULT_MODEL", "MAX_GENERATE_ROWS", "METHODS", "Generator"]



def _learned(record) -> tuple[str | None, str, str]:
    """What a run learned: its data set and the column of the property (a name alone can coincide)."""
    return record.data.csv, record.data.property_column, record.property_name


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
        hull: Hull | None = None,
    ):
        self.sampler = sampler
        self.run_dir = None if run_dir is None else Path(run_dir)
        self._reference = reference
        self._nearest: NearestIndex | None = None
        self._chemistry: Chemistry | None = None
        self._hull = hull  # None: built from the run's data on first use
        self.hull_given = hull is not None  # the user's own known compounds (read_hull, --reference)
        self._known: frozenset[str] | None = None
        if surrogate is not None and surrogate.vocabulary != sampler.vocabulary:
            raise GenerateError(
                f"the surrogate {surrogate.record.source} knows {len(surrogate.vocabulary)} elements, the "
                f"generator {len(sampler.vocabulary)}: train both on the same data"
            )
        if surrogate is not None and _learned(surrogate.record) != _learned(sampler.record):
            mine, theirs = sampler.record, surrogate.record
            raise GenerateError(
                f"the surrogate {theirs.source} learned {theirs.property_name!r} from "
                f"{theirs.data.describe()} "
                f"(column {theirs.data.property_column!r}), the generator {mine.property_name!r} from "
                f"{mine.data.describe()} (column {mine.data.property_column!r}): its predictions would be "
                "read as the generator's property; train both on the same data", field="surrogate"
            )  # fmt: skip
        self.surrogate = surrogate
        self.formation_energy = formation_energy or sampler.record.data.csv is None  # MP's, or declared
        if hull is not None and not self.formation_energy:
            record = sampler.record
            raise GenerateError(f"a reference hull needs a formation energy; this generator's "
                                f"{record.property_name!r} comes from {record.data.describe()} (declare "
                                "formation_energy=True if it is one)", field="reference")  # fmt: skip

    @classmethod
    def from_run(
        cls,
        path: Path | str,
        surrogate: Path | str | None = None,
        formation_energy: bool = False,
        hull: Hull | None = None,
    ) -> Generator:
        """Load a generator run directory (or its ``checkpoint.pt``) and, for the guided method, a surrogate
        run (default: the bundled one, when the generator was trained on the same data); ``RunError`` if
        missing or not a valid run. ``hull``: known compounds to place candidates against (``read_hull``)
        instead of the run's data set."""
        path = Path(path)
        sampler = Sampler.from_run(path)
        ensemble = Surrogate.from_run(surrogate) if surrogate is not None else bundled_surrogate_for(sampler)
        return cls(sampler, path if path.is_dir() else path.parent, None, ensemble, formation_energy, hull)

    @classmethod
    def default(cls, hull: Hull | None = None) -> Generator:
        """The bundled models: CondGAN on x^bp and the surrogate ensemble, trained on the MP set (split 0);
        ``hull``: the user's known compounds (``read_hull``) instead of the whole bundled set."""
        run_dir = bundled_run_dir(DEFAULT_MODEL)
        if not (run_dir / CHECKPOINT).is_file():
            raise GenerateError("no bundled default model; give a run directory (model=RUN_DIR)")
        return cls.from_run(run_dir, hull=hull)

    @property
    def hull(self) -> Hull | None:
        """The hull of every compound of the run's data when its property is a formation energy, or the
        one given (the user's known compounds)."""
        if self._hull is None and self.formation_energy:
            self._hull = hull_of(self.sampler.record.load_data())
        return self._hull

    @property
    def known_formulas(self) -> frozenset[str]:
        """Reduced formulas of every known compound: the run's data, all splits (the bundled MP set for
        the bundled models), and the user's reference when one was given. A row is ``novel`` when its
        formula is not among them (cached)."""
        if self._known is None:
            known = set(self.reference.formulas)
            record = getattr(self.sampler, "record", None)
            if hasattr(record, "load_data"):  # a sampler without a run (a replay) knows only its reference
                known |= set(record.load_data().frame["reduced_formula"])
            if self.hull_given:
                known |= self._hull.reduced_formulas()
            self._known = frozenset(known)
        return self._known

    def novelty(self, formulas: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Per formula: ``novel`` (not a known compound: ``known_formulas``) and ``not_in_training`` (not a
        formula of the model's training split: the benchmarks' notion). Two bool arrays, shape (N,)."""
        reduced = [reduced_formula(f) for f in formulas]
        training = self.reference.formula_set
        novel = np.array([f not in self.known_formulas for f in reduced], dtype=bool)
        return novel, np.array([f not in training for f in reduced], dtype=bool)

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

    def method(self, name: str) -> GuidedMethod | PaperMethod:
        """The object of one generation method, bound to this generator's models."""
        check_choice(name, METHODS, "method", error=GenerateError)
        return GuidedMethod(self) if name == "guided" else PaperMethod(self)

    def generate(
        self, target: float | Sequence[float] | None, n: int = 256, *, method: str = "guided", **options: Any
    ) -> pd.DataFrame:
        """``n`` compositions per target, one row each; ``options`` are the method's
        (``discover.options``: ``GuidedOptions`` or ``PaperOptions``).

        ``method="guided"`` (default): ranked, valid, unique small formulas (``schema.GUIDED_COLUMNS``);
        ``include_known`` lets training formulas through; ``max_e_hull`` keeps rows at or below it (a
        formation-energy property only); ``objective="stability"`` ranks by predicted e_above_hull and
        needs no target; ``target_range=(A, B)`` instead of a target ranks by ``p_in_range``, the
        probability that the property lies in [A, B] (``None`` leaves a side open); a ``hull`` given to
        the generator (``read_hull``) must hold every element a candidate may hold.
        ``method="paper"``: rows in draw order (``schema.PAPER_COLUMNS``); ``balance``:
        ``"none"``, ``"mh"`` (Sec. 4) or ``"exact"``; ``unique``: first row per (target, formula);
        ``neutral_only``: also redraw rows left not neutral; ``max_iterations``: MH iterations per chain
        (authors: 10,000). Both: ``elements`` (only these), ``require``, ``exclude`` as ``"Li,O"`` or a
        list; ``max_elements``; ``max_atoms`` (largest formula unit); ``seed``. Targets outside the
        training range warn (``ExtrapolationWarning``). The same inputs and ``seed`` give the same rows.
        Another method's option set to anything but its default is refused by name (``GenerateError``).
        """
        chosen = self.method(method)
        settings = build_options(method, options)
        if getattr(settings, "target_range", None) is not None and target is not None:
            raise GenerateError("give a target or a target_range, not both", field="target_range")
        if getattr(settings, "objective", "target") == "stability" and target is not None:
            # one rule with the screen: the stability objective ranks by e_above_hull alone
            raise GenerateError("give a target or objective 'stability', not both: the stability objective "
                                "ranks by predicted e_above_hull, a target would have no effect",
                                field="objective")  # fmt: skip
        no_target = not settings.needs_target and target is None
        targets = np.array([np.nan]) if no_target else check_targets(target)
        n = check_int(n, "n", 1, MAX_GENERATE_ROWS)
        if len(targets) * n > MAX_GENERATE_ROWS:
            raise GenerateError(
                f"{len(targets)} targets x n={n} is {len(targets) * n:,} rows; at most {MAX_GENERATE_ROWS:,} "
                "per call (call again with another seed for more)",
                field="n",
            )
        return chosen.generate(targets, n, settings)  # type: ignore[arg-type]

    def warn_extrapolation(self, targets: np.ndarray) -> None:
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
