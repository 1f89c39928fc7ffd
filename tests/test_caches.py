"""Every cache in the package is bounded, unless its keys are few by nature (issue 25, row 8).

A long-running server (`stoichgen serve`) under varied requests grew from 1.1 to 5.3 GB: unbounded
`functools.cache` on the enumerators kept every element set, formula unit and oxidation-state tuple any
request had asked about. Caches keyed by such things are now `lru_cache(maxsize=...)`; those left
unbounded are keyed by one element symbol, a table name or nothing, and are listed here by name.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import numpy as np

import stoichgen

# keyed by an element symbol (118 at most), a table, a run directory or nothing: few by nature
FEW_KEYS = {
    "stoichgen.chem.oxidation.oxidation_states", "stoichgen.chem.validity._smact_table",
    "stoichgen.chem.validity.smact_states", "stoichgen.data.element_descriptors",
    "stoichgen.data._descriptor_matrix", "stoichgen.data._load_mp", "stoichgen.screen.scoring._surrogate",
    "stoichgen.space.score.substitutes", "stoichgen.space.score._substitution_probability",
    "stoichgen.space.assign._occurrence", "stoichgen.space.assign.state_probability",
    "stoichgen.space.formulas._states", "stoichgen.space.formulas._electronegativity",
    "stoichgen.space.formulas._pymatgen_metal", "stoichgen.space.formulas._pauling_x",
    "stoichgen.web.app._libc",
    # verify: the bundled hull, the shipped calibration, CHGNet and its optimiser per device (cpu, cuda)
    "stoichgen.verify.batch.bundled_hull", "stoichgen.verify.footing.shipped",
    "stoichgen.verify.search.potential", "stoichgen.verify.search._optimizer",
    # one reproduction's pieces, keyed by its plan's runs and splits (18 runs, 3 splits)
    "stoichgen.paper.pieces.split", "stoichgen.paper.pieces.sampler", "stoichgen.paper.pieces.generator",
    "stoichgen.paper.pieces.nearest",
}  # fmt: skip


def _caches():
    """Every functools cache defined in the package's modules: (qualified name, wrapper)."""
    for info in pkgutil.walk_packages(stoichgen.__path__, "stoichgen."):
        if info.name.startswith("stoichgen.cli") or info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            owners = [value] if not inspect.isclass(value) else list(vars(value).values())
            for item in owners:
                wrapped = getattr(item, "func", item)  # a cached classmethod or property's function
                if hasattr(wrapped, "cache_info") and getattr(wrapped, "__module__", None) == info.name:
                    yield f"{info.name}.{wrapped.__name__}", wrapped


def test_every_cache_with_many_possible_keys_is_bounded():
    unbounded = sorted(name for name, cache in _caches()
                       if cache.cache_parameters()["maxsize"] is None and name not in FEW_KEYS)  # fmt: skip
    assert not unbounded, f"unbounded caches keyed by what requests vary: {unbounded}"


def test_varied_requests_keep_the_enumerator_caches_within_their_bounds():
    """Many different element sets, formula units and tables (what varied requests ask for): the caches
    stay at their maximum size, and still answer correctly."""
    from stoichgen.space.formulas import NEUTRAL, SMACT, candidate_counts, state_choices

    symbols = ["Li", "Na", "K", "Mg", "Ca", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Al", "O", "S", "F", "Cl"]
    rng = np.random.default_rng(0)
    limit = candidate_counts.cache_parameters()["maxsize"]
    for _ in range(limit + 500):
        k = int(rng.integers(2, 4))
        elements = tuple(rng.choice(symbols, size=k, replace=False))
        candidate_counts(elements, int(rng.integers(k, 9)), SMACT if rng.random() < 0.5 else NEUTRAL)
    assert candidate_counts.cache_info().currsize <= limit
    assert state_choices.cache_info().currsize <= state_choices.cache_parameters()["maxsize"]
    assert candidate_counts(("Li", "O"), 6, NEUTRAL).tolist() == [[2, 1]]
