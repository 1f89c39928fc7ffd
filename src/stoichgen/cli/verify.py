"""``stoichgen verify``: a crystal structure and an energy from a universal ML potential for each candidate,
and ``generate --verify K``'s flags."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from stoichgen.cli.common import COMMANDS, int_in
from stoichgen.errors import InputError
from stoichgen.io import check_output, write_table

SHOWN = ("formula", "verified_formation_energy", "verified_e_above_hull", "verified_spacegroup",
         "verified_trials", "verify_error")  # fmt: skip


def read_candidates(path: str) -> pd.DataFrame:
    """A table of candidates (CSV, Parquet or JSON records), as ``generate`` writes them."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"candidates file {path!r} does not exist", field="file")
    suffix = file.suffix.lower()
    try:
        if suffix == ".parquet":
            return pd.read_parquet(file)
        if suffix == ".json":
            return pd.read_json(file, orient="records")
        return pd.read_csv(file)
    except (ValueError, OSError) as err:
        raise InputError(f"candidates file {path!r} cannot be read: {err}", field="file") from None


def options_from(args: argparse.Namespace):
    """``VerifyOptions`` from the flags (the defaults where a flag is not given)."""
    from stoichgen.verify import VerifyOptions

    given = {name: getattr(args, name) for name in ("trials", "steps", "budget_s", "max_cell_atoms")}
    return VerifyOptions(**{k: v for k, v in given.items() if v is not None})


def run_kwargs(args: argparse.Namespace) -> dict:
    return {"options": options_from(args), "cif_dir": args.cif_dir, "workers": args.workers,
            "ray": args.ray, "device": args.device}  # fmt: skip


def summary(frame: pd.DataFrame) -> str:
    """One line: how many rows were verified, how many at or below the hull, how many failed and why."""
    done = frame["verified_formation_energy"].notna()
    failed = frame.loc[~done & ~frame["verify_error"].str.startswith("not verified"), "verify_error"]
    below = int((frame["verified_e_above_hull"] <= 0).sum())
    text = f"verified {int(done.sum())} of {len(frame)} rows; {below} at or below the bundled hull"
    if len(failed):
        text += f"; {len(failed)} failed (first: {failed.iloc[0]})"
    return text


def _verify(args: argparse.Namespace) -> int:
    from stoichgen.verify import require_extra, verify_frame

    if args.output is not None:
        check_output(args.output, args.force)  # refuse before any work
    require_extra()
    frame = read_candidates(args.file)
    out = verify_frame(frame, args.top, args.formula_column, **run_kwargs(args))
    print(f"stoichgen: {summary(out)}", file=sys.stderr)
    if args.output is not None:
        write_table(out, args.output, force=args.force)
        print(f"wrote {len(out)} rows to {args.output}", file=sys.stderr)
    else:
        shown = [c for c in ("target", *SHOWN) if c in out]
        print(out[shown].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


def add_search_flags(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """The search's flags, shared by ``verify`` and ``generate --verify``."""
    parser.add_argument("--trials", type=int_in(1, 1000), metavar="T",
                        help=f"{prefix}random structures relaxed per composition (default 4)")
    parser.add_argument("--steps", type=int_in(1, 100_000), metavar="S",
                        help=f"{prefix}relaxation steps at most (default 150)")
    parser.add_argument("--budget", dest="budget_s", type=float, metavar="SECONDS",
                        help=f"{prefix}seconds per composition; later trials are skipped (default 60)")
    parser.add_argument("--max-cell-atoms", type=int_in(1, 200), metavar="N",
                        help=f"{prefix}atoms per cell at most: formula units 1..Z fit it (default 16)")
    parser.add_argument("--cif-dir", metavar="DIR", help=f"{prefix}write each structure as DIR/FORMULA.cif")
    parser.add_argument("--workers", type=int_in(1, 1024), default=1, metavar="N",
                        help=f"{prefix}local worker processes (default 1); with --ray local, Ray's CPUs")
    parser.add_argument("--ray", nargs="?", const="auto", metavar="ADDRESS",
                        help=f"{prefix}run the searches as Ray tasks (ADDRESS, default auto, or 'local')")
    parser.add_argument("--device", choices=("cpu", "cuda"),
                        help=f"{prefix}where CHGNet runs (default: CUDA when present)")  # fmt: skip


def add_verify(commands) -> None:
    ve = commands.add_parser(
        "verify",
        help=COMMANDS["verify"][1],
        description="For each composition of FILE (generate's output, or any table with a formula column): "
        "a small random structure search (pyxtal: T trials, formula units 1..Z, space groups drawn), each "
        "relaxed by the CHGNet potential (cell and positions, ASE's FIRE), the lowest energy kept. Adds "
        "verified_formation_energy (eV/atom, on the bundled data's footing: elemental references from the "
        "same pipeline, anion shifts fitted on training-split compounds), verified_e_above_hull (against "
        "the bundled hull), the space group, volume, trials, CIF path and verify_error (why a row has no "
        "energy). Results are cached per formula and settings. Needs the verify extra: "
        'pip install "stoichgen[verify]".',
    )
    ve.add_argument("file", metavar="FILE", help="candidates: .csv, .parquet or .json")
    ve.add_argument("--formula-column", default="formula", metavar="C", help="default: formula")
    ve.add_argument("--top", type=int_in(1, 1_000_000), metavar="K",
                    help="verify the first K rows per target (or overall); default every row")  # fmt: skip
    add_search_flags(ve)
    ve.add_argument("-o", "--output", metavar="FILE", help="write .csv, .parquet or .json (default: print)")
    ve.add_argument("--force", action="store_true", help="overwrite an existing output file")
    ve.set_defaults(handler=_verify)
