"""Writing generated rows: CSV, JSON (a list of records) or Parquet, checked before any work and
written atomically.

>>> check_output("candidates.xlsx")
Traceback (most recent call last):
...
stoichgen.errors.GenerateError: output 'candidates.xlsx': unknown format '.xlsx'; use .csv, .parquet or .json
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

from stoichgen.errors import GenerateError, StoichgenError
from stoichgen.run import atomic_write_bytes, atomic_write_text

OUTPUT_FORMATS = (".csv", ".parquet", ".json")


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
    if not path.parent.is_dir():
        raise error(f"output {str(path)!r}: directory {str(path.parent)!r} does not exist")
    if suffix == ".parquet" and importlib.util.find_spec("pyarrow") is None:
        raise error(
            f"output {str(path)!r}: writing Parquet needs pyarrow, which is not installed; "
            "run `pip install pyarrow` or write .csv or .json"
        )
    return path


def write_table(frame: pd.DataFrame, path: Path | str, force: bool = False) -> Path:
    """Write generated rows as CSV, JSON (a list of records) or Parquet, atomically (temp file + rename)."""
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
