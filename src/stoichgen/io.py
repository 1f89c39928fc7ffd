"""Files the user keeps: atomic writes and the output tables (CSV, JSON, Parquet), checked before any work.

No torch, no models: the screen, the web page, the checkpoints and the CLI all write through here.

>>> check_output("candidates.xlsx")
Traceback (most recent call last):
...
stoichgen.errors.GenerateError: output 'candidates.xlsx': unknown format '.xlsx'; use .csv, .parquet or .json
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from stoichgen.errors import GenerateError, StoichgenError

__all__ = ["FIGURE_FORMATS", "OUTPUT_FORMATS", "atomic_path", "atomic_write_bytes", "atomic_write_text",
           "check_figure", "check_output", "read_written_table", "write_table"]  # fmt: skip

OUTPUT_FORMATS = (".csv", ".parquet", ".json")
FIGURE_FORMATS = (".png", ".pdf", ".svg")  # what matplotlib writes without extra packages

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """A fresh temporary path beside ``path`` to write to; renamed onto ``path`` when the block ends
    without an error, removed otherwise: a reader (or a power cut) sees the old file or the new one,
    never half of one. Two writers never share a temporary name.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     target = Path(folder) / "a.txt"
    ...     with atomic_path(target) as tmp:
    ...         _ = tmp.write_text("done")
    ...     sorted(p.name for p in Path(folder).iterdir()), target.read_text()
    (['a.txt'], 'done')
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path | str, write: Callable[[Any], None]) -> None:
    """Write a file through ``write(handle)`` (a binary handle), atomically (``atomic_path``)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        write(handle)


def atomic_write_text(path: Path | str, text: str) -> None:
    """Write ``text`` (UTF-8) atomically."""
    atomic_write_bytes(path, lambda handle: handle.write(text.encode()))


def check_output(path: Path | str, force: bool = False, error: type[StoichgenError] = GenerateError) -> Path:
    """Refuse an output path before any work (``error``, by default ``GenerateError``): unknown suffix,
    a directory, an existing file (without force), no parent, Parquet without pyarrow."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise error(
            f"output {str(path)!r}: unknown format {suffix or '(no suffix)'!r}; use .csv, .parquet or .json"
        )
    if path.is_dir():
        raise error(f"output {str(path)!r} is a directory")
    if path.exists() and not force:
        raise error(f"output {str(path)!r} exists; overwrite it with force=True")
    _check_writable(path, error, "output")
    if suffix == ".parquet" and importlib.util.find_spec("pyarrow") is None:
        raise error(
            f"output {str(path)!r}: writing Parquet needs pyarrow, which is not installed; "
            "run `pip install pyarrow` or write .csv or .json"
        )
    return path


def _check_writable(path: Path, error: type[StoichgenError], what: str) -> None:
    """Refuse a path whose folder is missing or takes no new file (read-only, /sys, /proc): a temporary
    file is made and removed there, which is what the atomic write will do after the work."""
    if not path.parent.is_dir():
        raise error(f"{what} {str(path)!r}: directory {str(path.parent)!r} does not exist")
    try:
        fd, probe = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".probe")
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise error(f"{what} {str(path)!r}: cannot write in {str(path.parent)!r} ({reason})") from None
    os.close(fd)
    Path(probe).unlink(missing_ok=True)


def check_figure(path: Path | str, force: bool = False, error: type[StoichgenError] = GenerateError) -> Path:
    """Refuse a picture path before any work, as ``check_output`` does a table's: a format matplotlib
    writes (``FIGURE_FORMATS``; no suffix is refused rather than guessed), not a directory, not an existing
    file without force, a folder that takes a new file.

    >>> check_figure("hull.xyz")
    Traceback (most recent call last):
    ...
    stoichgen.errors.GenerateError: plot 'hull.xyz': unknown format '.xyz'; use .png, .pdf or .svg
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FIGURE_FORMATS:
        raise error(f"plot {str(path)!r}: unknown format {suffix or '(no suffix)'!r}; use .png, .pdf or .svg",
                    field="plot")  # fmt: skip
    if path.is_dir():
        raise error(f"plot {str(path)!r} is a directory", field="plot")
    if path.exists() and not force:
        raise error(f"plot {str(path)!r} exists; overwrite it with force=True", field="plot")
    _check_writable(path, error, "plot")
    return path


def read_written_table(path: Path | str, suffix: str) -> pd.DataFrame:
    """A Parquet file, or JSON records (what ``write_table`` writes), every value as text as a CSV's is
    read (``data.read_table``)."""
    if suffix == ".parquet":
        table = pd.read_parquet(path)
    else:
        records = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise ValueError("expected a list of records (objects), as generate -o FILE.json writes")
        table = pd.DataFrame.from_records(records)
    return table.apply(lambda column: column.map(lambda v: "" if v is None else str(v))).astype(str)


def write_table(frame: pd.DataFrame, path: Path | str, force: bool = False) -> Path:
    """Write rows as CSV, JSON (a list of records) or Parquet, atomically."""
    path = check_output(path, force)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        atomic_write_text(path, frame.to_csv(index=False))
    elif suffix == ".json":
        atomic_write_text(path, frame.to_json(orient="records", indent=2) + "\n")
    else:
        data = frame.to_parquet(None, index=False)
        atomic_write_bytes(path, lambda handle: handle.write(data))
    return path
