"""Running a screen: chunks scored by a backend, written as Parquet parts, joined into one file.

Backends: this process (``workers=1``), local worker processes (``workers=N``), or Ray tasks on a
cluster (``ray="ADDRESS"``, ``"auto"``, or ``"local"`` for a Ray started here). Each yields chunks'
rows as they finish; this process writes each as a part (``.OUT.parts/000012.parquet``, atomically), so
a rerun skips finished chunks, and finally joins the parts in chunk order, or keeps the best ``top``
rows, into ``OUT``. The same rows in the same order whatever the backend and the number of workers.

>>> result = run_screen(ScreenSpec(elements=("Li", "O"), max_atoms=4), "li-o.parquet")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from stoichgen.errors import StoichgenError
from stoichgen.io import atomic_path, check_output
from stoichgen.schema import SCREEN_COLUMNS, empty_frame
from stoichgen.screen.plan import Chunk, ScreenError, ScreenSpec, describe_space, plan
from stoichgen.screen.scoring import Scorer, check_spec, top_rows

__all__ = ["ScreenResult", "ray_session", "run_screen"]

PARTS_FORMAT = 1


@dataclass(frozen=True)
class ScreenResult:
    path: Path
    rows: int  # rows written
    screened: int  # rows scored, over all chunks
    chunks: int
    skipped: int  # chunks a previous run had finished
    seconds: float
    backend: str


def score_chunk(spec: ScreenSpec, chunk: Chunk) -> pd.DataFrame:
    """One chunk's rows, best ``top`` only when asked (a worker's whole job)."""
    return top_rows(Scorer.from_run(spec.surrogate).score(spec, chunk), spec.top)


def _warm(surrogate: str) -> None:
    # Ctrl-C in a terminal reaches the whole process group: the parent stops the work, the workers stay
    # quiet instead of each printing a traceback
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    Scorer.from_run(surrogate)  # each worker loads its models once, before its first chunk


def _in_process(spec: ScreenSpec, todo: Sequence[Chunk]) -> Iterator[tuple[Chunk, pd.DataFrame]]:
    for chunk in todo:
        yield chunk, score_chunk(spec, chunk)


def _processes(spec: ScreenSpec, todo: Sequence[Chunk], workers: int) -> Iterator[tuple[Chunk, pd.DataFrame]]:
    """Local worker processes (spawned: a clean interpreter each), at most two chunks each in flight."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_warm, initargs=(spec.surrogate,)
    ) as pool:
        queue, pending = list(todo), {}
        try:
            while queue or pending:
                while queue and len(pending) < 2 * workers:
                    chunk = queue.pop(0)
                    pending[pool.submit(score_chunk, spec, chunk)] = chunk
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=lambda f: pending[f].index):
                    yield pending.pop(future), future.result()
        except BaseException:
            # Ctrl-C (or an error): stop now. The workers ignore SIGINT and shutdown() alone lets the
            # running chunks finish, with the interpreter's exit waiting for them (tens of seconds), so
            # end the workers; finished chunks are already parts (Python 3.14: pool.terminate_workers())
            processes = list(pool._processes.values())
            pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                process.terminate()
            raise


def import_ray(error: type[StoichgenError] = ScreenError):
    """The ``ray`` module, or ``error`` saying how to get it."""
    try:
        import ray
    except ImportError:
        raise error('the Ray backend needs Ray, an optional extra: pip install "stoichgen[ray]"',
                    field="ray") from None  # fmt: skip
    return ray


RAY_CONNECT_S = 5.0  # a cluster's head answers a TCP connect at once; Ray itself retries for minutes


def _unreachable(address: str) -> str | None:
    """Why nothing answers at a ``HOST:PORT`` (or ``ray://HOST:PORT``) address, or None (answered, or
    not such an address: ``auto``)."""
    host, colon, port = address.removeprefix("ray://").rpartition(":")
    if not colon or not port.isdigit():
        return None
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=RAY_CONNECT_S):
            return None
    except OSError as err:
        return err.strerror or type(err).__name__


@contextlib.contextmanager
def ray_session(address: str, workers: int, error: type[StoichgenError] = ScreenError):
    """Ray, connected to the cluster at ``address`` (``"auto"``: ``RAY_ADDRESS`` or one running here) or
    started here with ``workers`` CPUs (``"local"``), and shut down afterwards if started here. Without
    Ray, or without a cluster at ``address``, ``error`` saying so within seconds (Ray alone would retry
    for minutes)."""
    ray = import_ray(error)
    started = not ray.is_initialized()
    if started and address == "local":
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
    elif started:
        reason = _unreachable(address)
        if reason is None:
            try:
                ray.init(address=address, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as err:
                reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        if reason is not None:
            raise error(f"no Ray cluster at {address!r} ({reason}); start one with `ray start --head`, or "
                        "use --ray local", field="ray") from None  # fmt: skip
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def _ray(ray, spec: ScreenSpec, todo: Sequence[Chunk]):
    """Ray tasks (on the session's cluster), one per chunk, at most two per CPU of the cluster in flight."""
    task = ray.remote(num_cpus=1, max_retries=2)(score_chunk)
    slots = 2 * max(1, int(ray.cluster_resources().get("CPU", 1)))
    queue, pending = list(todo), {}
    try:
        while queue or pending:
            while queue and len(pending) < slots:
                chunk = queue.pop(0)
                pending[task.remote(spec, chunk)] = chunk
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                yield pending.pop(ref), ray.get(ref)
    except BaseException:
        # Ctrl-C (or an error): the running tasks would go on on the cluster; stop them
        for ref in pending:
            ray.cancel(ref, force=True)
        raise


def _part(parts: Path, chunk: Chunk) -> Path:
    return parts / f"{chunk.index:06d}.parquet"


def _write_part(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as temporary:
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), temporary)


def _parts_dir(out: Path, spec: ScreenSpec, n_chunks: int) -> Path:
    """``.OUT.parts/`` with its manifest; refused when it holds another screen's parts."""
    parts = out.with_name(f".{out.name}.parts")
    manifest = {"format": PARTS_FORMAT, "spec": spec.fingerprint(), "chunks": n_chunks}
    if parts.exists():
        try:
            found = json.loads((parts / "screen.json").read_text())
        except (OSError, ValueError):
            found = None
        if found != manifest:
            raise ScreenError(f"{str(parts)!r} holds the parts of a different screen; remove it, or write "
                              "to another file", field="output")  # fmt: skip
        return parts
    parts.mkdir()
    (parts / "screen.json").write_text(json.dumps(manifest))
    return parts


def _join(parts: Path, chunks: Sequence[Chunk], out: Path, top: int | None, ranked: bool) -> int:
    """The parts into ``out``, written atomically: in chunk order, or with a score (``ranked``) best
    first, ties in chunk order (with ``top``: the best ``top`` rows, in bounded memory, at most twice
    ``top`` rows at a time; without: all rows at once, columnar). No parts (nothing to screen): an empty
    table with the screen's columns, never a 0-byte file."""
    names = [_part(parts, c) for c in chunks]
    with atomic_path(out) as temporary:
        if not names:
            empty = empty_frame(SCREEN_COLUMNS)
            pq.write_table(pa.Table.from_pandas(empty, preserve_index=False), temporary)
            return 0
        if top is not None:
            best = None
            for name in names:
                part = pq.read_table(name).to_pandas()
                best = part if best is None else top_rows(pd.concat([best, part], ignore_index=True), top)
            best = top_rows(best, top).reset_index(drop=True)
            pq.write_table(pa.Table.from_pandas(best, preserve_index=False), temporary)
            return len(best)
        if ranked:  # pyarrow's sort is stable, null, NaN and inf last (its default), as top_rows ranks
            table = pa.concat_tables([pq.read_table(name) for name in names])
            table = table.take(pc.sort_indices(table, [("score", "ascending")]))
            pq.write_table(table, temporary)
            return table.num_rows
        rows = 0
        with pq.ParquetWriter(temporary, pq.read_schema(names[0])) as writer:
            for name in names:
                table = pq.read_table(name)
                writer.write_table(table)
                rows += table.num_rows
        return rows


def run_screen(
    spec: ScreenSpec,
    out: Path | str,
    *,
    workers: int | None = None,
    ray: str | None = None,
    force: bool = False,
    log: Callable[[str], None] | None = None,
) -> ScreenResult:
    """Screen ``spec`` into the Parquet file ``out`` (see the module docstring). ``workers``: local
    processes (default: the machine's cores), or Ray's CPUs with ``ray="local"``."""
    started = time.perf_counter()
    out = Path(out)
    if out.suffix != ".parquet":
        raise ScreenError(f"output {str(out)!r}: a screen writes Parquet (.parquet)", field="output")
    check_output(out, force, ScreenError)
    workers = (os.cpu_count() or 1) if workers is None else workers
    if not 1 <= workers <= 1024:
        raise ScreenError(f"workers must be between 1 and 1024, got {workers}", field="workers")
    check_spec(spec)
    chunks = plan(spec)
    with contextlib.ExitStack() as stack:
        # Ray is connected to (or refused) before any part is written
        session = None if ray is None else stack.enter_context(ray_session(ray, workers))
        parts = _parts_dir(out, spec, len(chunks))
        todo = [c for c in chunks if not _part(parts, c).exists()]
        skipped = len(chunks) - len(todo)
        if session is not None:
            backend, label = _ray(session, spec, todo), f"Ray ({ray})"
        elif workers == 1 or len(todo) <= 1:
            backend, label = _in_process(spec, todo), "this process"
        else:
            backend, label = _processes(spec, todo, workers), f"{workers} worker processes"
        if log is not None:
            log(f"screening {describe_space(spec, chunks)} on {label}"
                + (f"; {skipped} chunks already done" if skipped else ""))  # fmt: skip
        progress = tqdm(
            total=len(chunks), initial=skipped, unit="chunk", desc="screen", disable=not sys.stderr.isatty()
        )
        with progress:
            for chunk, frame in backend:
                _write_part(frame, _part(parts, chunk))
                progress.update()
    ranked = spec.target is not None or spec.objective == "stability"
    rows = _join(parts, chunks, out, spec.top, ranked)
    shutil.rmtree(parts)
    screened = sum(c.rows for c in chunks)
    return ScreenResult(out, rows, screened, len(chunks), skipped, time.perf_counter() - started, label)
