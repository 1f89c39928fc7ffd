"""Verifying many compositions: ``verify(formulas)`` and ``verify_frame(frame, top=K)``.

Each distinct formula is searched once (``search.search``), in this process, in spawned worker processes
or as Ray tasks, with a progress bar; results are cached per formula and settings (a JSON file per
formula under ``cache_dir``), so a rerun is instant. Energies are put on the bundled data's footing
(``footing``) and placed on the bundled hull.

>>> frame = verify(["NaCl", "LiXx"], VerifyOptions(trials=2))  # doctest: +SKIP
>>> frame[["formula", "verified_formation_energy", "verify_error"]]  # doctest: +SKIP
  formula  verified_formation_energy                                   verify_error
0    NaCl                     -2.06
1    LiXx                        NaN  unknown element symbol 'Xx' in formula 'LiXx'
"""

from __future__ import annotations

import functools
import json
import math
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from stoichgen.chem.hull import Hull
from stoichgen.data import load_mp_formation_energy
from stoichgen.errors import StoichgenError
from stoichgen.io import atomic_write_text
from stoichgen.schema import VERIFY_COLUMNS
from stoichgen.verify.footing import Calibration, element_energy, shipped
from stoichgen.verify.options import DEFAULT_OPTIONS, VerifyError, VerifyOptions, require_extra
from stoichgen.verify.search import Found, check_composition, default_device, search

__all__ = ["cache_dir", "verify", "verify_frame"]

NOT_IN_TOP = "not verified: outside the top {top} of its target"


def cache_dir() -> Path:
    """Where results are cached: ``$STOICHGEN_CACHE/verify``, else ``~/.cache/stoichgen/verify``."""
    root = os.environ.get("STOICHGEN_CACHE") or Path.home() / ".cache" / "stoichgen"
    return Path(root) / "verify"


def _cache_file(folder: Path, options: VerifyOptions, formula: str) -> Path:
    return folder / options.fingerprint() / f"{formula}.json"


def _read_cache(path: Path) -> Found | None:
    try:
        return Found(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):  # absent, half-written by an old version, or another format
        return None


def _write_cache(path: Path, found: Found) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(asdict(found)))


def _work(task: tuple[str, VerifyOptions, str]) -> Found:
    try:
        return _search(*task)
    except StoichgenError:
        raise
    except Exception as err:  # pyxtal, spglib, ASE or torch failing on one formula must not stop a batch
        why = f"search failed ({type(err).__name__}: {str(err)[:100]})"
        return Found(task[0], math.nan, "", "", math.nan, 0, 0, 0.0, why)


def _search(formula: str, options: VerifyOptions, device: str) -> Found:
    if formula.startswith("element:"):  # an elemental reference, carried as a Found
        symbol = formula.removeprefix("element:")
        energy = element_energy(symbol, options, device)
        return Found(formula, energy, "", "", math.nan, int(math.isfinite(energy)), 1, 0.0,
                     "" if math.isfinite(energy) else "no relaxation of the element survived")  # fmt: skip
    return search(formula, options, device)


def _warm(device: str, threads: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the parent; the workers stay quiet
    import torch

    torch.set_num_threads(threads)
    from stoichgen.verify.search import potential

    potential(device)  # each worker loads the model once, before its first formula


def _in_process(tasks: Sequence[tuple[str, VerifyOptions, str]]) -> Iterator[Found]:
    for task in tasks:
        yield _work(task)


def _processes(tasks: Sequence[tuple[str, VerifyOptions, str]], workers: int) -> Iterator[Found]:
    """Spawned worker processes, each with its share of the cores for torch's threads."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_warm,
                             initargs=(tasks[0][2], threads)) as pool:  # fmt: skip
        pending = {pool.submit(_work, task) for task in tasks}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _ray(tasks: Sequence[tuple[str, VerifyOptions, str]], address: str, workers: int) -> Iterator[Found]:
    """Ray tasks, one per formula, on a cluster (``address``) or a Ray started here (``"local"``)."""
    try:
        import ray
    except ImportError:
        raise VerifyError('the Ray backend needs Ray: pip install "stoichgen[ray]"', field="ray") from None
    started = not ray.is_initialized()
    if started:
        local = {"num_cpus": workers, "include_dashboard": False}
        where = local if address == "local" else {"address": address}
        ray.init(log_to_driver=False, configure_logging=False, **where)
    try:
        task = ray.remote(num_cpus=1, max_retries=1)(_work)
        pending = [task.remote(t) for t in tasks]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
    finally:
        if started:
            ray.shutdown()


def run_searches(
    formulas: Sequence[str],
    options: VerifyOptions,
    *,
    workers: int = 1,
    ray: str | None = None,
    device: str | None = None,
    cache: Path | None = None,
    progress: bool | None = None,
) -> dict[str, Found]:
    """The search of every formula (reduced formulas, or ``element:X`` for a reference), from the cache
    where it holds one; new results are cached as they arrive."""
    require_extra()
    device = device or default_device()
    folder = cache_dir() if cache is None else Path(cache)
    results: dict[str, Found] = {}
    todo = []
    for formula in dict.fromkeys(formulas):
        found = _read_cache(_cache_file(folder, options, formula))
        if found is not None:
            results[formula] = found
        else:
            todo.append((formula, options, device))
    if not todo:
        return results
    if ray is not None:
        backend = _ray(todo, ray, workers)
    elif workers > 1 and len(todo) > 1:
        backend = _processes(todo, min(workers, len(todo)))
    else:
        backend = _in_process(todo)
    show = sys.stderr.isatty() if progress is None else progress
    with tqdm(total=len(todo), unit="formula", desc="verify", disable=not show) as bar:
        for found in backend:
            _write_cache(_cache_file(folder, options, found.formula), found)
            results[found.formula] = found
            bar.update()
    return results


@functools.cache
def bundled_hull() -> Hull:
    """The hull of the whole bundled set (what ``generate``'s e_above_hull uses)."""
    data = load_mp_formation_energy()
    return Hull(list(data.frame["reduced_formula"]), data.y)


def _references(formulas: Sequence[str], options: VerifyOptions, run: Callable) -> Calibration:
    """The shipped calibration, with references computed (and cached) for elements it lacks."""
    calibration = shipped()
    missing = calibration.missing(formulas)
    if not missing:
        return calibration
    # references are always computed with the default settings: the shifts were fitted with them
    found = run([f"element:{s}" for s in missing], replace(DEFAULT_OPTIONS, budget_s=options.budget_s))
    elements = {**calibration.elements, **{s: found[f"element:{s}"].energy_per_atom for s in missing}}
    return Calibration(elements, calibration.corrections, calibration.fit)


def verify(
    formulas: Sequence[str],
    options: VerifyOptions = DEFAULT_OPTIONS,
    *,
    cif_dir: Path | str | None = None,
    workers: int = 1,
    ray: str | None = None,
    device: str | None = None,
    cache: Path | str | None = None,
    hull: Hull | None = None,
    progress: bool | None = None,
) -> pd.DataFrame:
    """One row per formula (in order, ``formula`` as given) with ``schema.VERIFY_COLUMNS``.

    A formula that cannot be verified gets NaN energies and its reason in ``verify_error``: unparseable,
    an element CHGNet does not know, every relaxation exploded.

    Args:
        formulas: chemical formulas (any pymatgen-readable form; parsed strictly).
        options: the search (trials, cell size, steps, time budget, seed).
        cif_dir: a folder to write each structure's CIF to (``FORMULA.cif``); none written without it.
        workers: local worker processes (spawned: a script must start under
            ``if __name__ == "__main__":``); with ``ray``, the CPUs of a Ray started here (``"local"``).
        ray: a Ray cluster's address, ``"auto"``, or ``"local"``.
        device: ``"cpu"`` or ``"cuda"`` (default: CUDA when torch sees one).
        cache: the cache folder (default ``cache_dir()``).
        hull: the known compounds (default: the bundled set).
        progress: show a progress bar (default: when stderr is a terminal).
    """
    require_extra()
    if cif_dir is not None and not Path(cif_dir).is_dir():
        raise VerifyError(f"CIF folder {str(cif_dir)!r} does not exist", field="cif_dir")
    if isinstance(formulas, str):
        raise VerifyError("formulas must be a list of formulas, not one string", field="formulas")
    reduced: list[str | None] = []
    errors: list[str] = []
    for formula in formulas:
        try:
            reduced.append(check_composition(str(formula))[0])
            errors.append("")
        except StoichgenError as err:
            reduced.append(None)
            errors.append(str(err))
    good = [f for f in reduced if f is not None]

    def run(names: Sequence[str], settings: VerifyOptions) -> dict[str, Found]:
        return run_searches(names, settings, workers=workers, ray=ray, device=device,
                            cache=None if cache is None else Path(cache), progress=progress)  # fmt: skip

    found = run(good, options) if good else {}
    calibration = _references(good, options, run) if good else shipped()
    hull = bundled_hull() if hull is None and good else hull
    values: dict[str, list] = {c.name: [] for c in VERIFY_COLUMNS}
    for name, error in zip(reduced, errors, strict=True):
        row = _row(found.get(name) if name else None, error, calibration, hull, cif_dir)
        for column in VERIFY_COLUMNS:
            values[column.name].append(row[column.name])
    frame = pd.DataFrame({"formula": list(formulas)})
    for column in VERIFY_COLUMNS:
        frame[column.name] = np.asarray(values[column.name], dtype=column.dtype)
    return frame


def _row(found: Found | None, error: str, calibration: Calibration, hull: Hull | None,
         cif_dir: Path | str | None) -> dict[str, object]:  # fmt: skip
    row: dict[str, object] = {"verified_formation_energy": math.nan, "verified_e_above_hull": math.nan,
                              "verified_decomposition": "", "verified_spacegroup": "",
                              "verified_volume_per_atom": math.nan, "verified_trials": 0, "verified_cif": "",
                              "verified_seconds": math.nan, "verify_error": error}  # fmt: skip
    if found is None:
        return row
    row.update(verified_spacegroup=found.spacegroup, verified_volume_per_atom=found.volume_per_atom,
               verified_trials=found.trials, verified_seconds=found.seconds,
               verify_error=found.reason)  # fmt: skip
    if found.reason:
        return row
    energy = calibration.formation_energy(found.formula, found.energy_per_atom)
    if not math.isfinite(energy):
        missing = ", ".join(calibration.missing([found.formula])) or "an element"
        row["verify_error"] = f"no elemental reference for {missing}"
        return row
    row["verified_formation_energy"] = energy
    if hull is not None:
        placed = hull.query(found.formula, energy)
        row.update(verified_e_above_hull=placed.e_above_hull, verified_decomposition=placed.decomposition)
    if cif_dir is not None and found.cif:
        path = Path(cif_dir) / f"{found.formula}.cif"
        atomic_write_text(path, found.cif)
        row["verified_cif"] = str(path)
    return row


def verify_frame(
    frame: pd.DataFrame, top: int | None = None, formula_column: str = "formula", **kwargs
) -> pd.DataFrame:
    """``frame`` with ``VERIFY_COLUMNS`` added: its first ``top`` rows per ``target`` (or overall, without
    a target column; every row without ``top``) verified, the others marked in ``verify_error``. Keyword
    arguments go to ``verify``."""
    if formula_column not in frame:
        raise VerifyError(f"no column {formula_column!r} (columns: {', '.join(map(str, frame.columns))})",
                          field="formula_column")  # fmt: skip
    if top is not None and top < 1:
        raise VerifyError(f"top must be an integer >= 1, got {top}", field="top")
    if top is None:
        chosen = np.ones(len(frame), dtype=bool)
    elif "target" in frame:
        chosen = (frame.groupby("target", sort=False).cumcount() < top).to_numpy()
    else:
        chosen = np.arange(len(frame)) < top
    checked = verify(frame.loc[chosen, formula_column].astype(str).tolist(), **kwargs)
    out = frame.reset_index(drop=True).copy()
    for column in VERIFY_COLUMNS:
        filler = {float: math.nan, np.int64: 0}.get(column.dtype, "")
        values = pd.Series([filler] * len(out), dtype=column.dtype)
        values[np.flatnonzero(chosen)] = checked[column.name].to_numpy()
        if column.name == "verify_error":
            values[~chosen] = NOT_IN_TOP.format(top=top)
        out[column.name] = values
    return out
