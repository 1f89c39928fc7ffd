"""``stoichgen screen``: every neutral formula over a set of elements (or your list), scored and ranked."""

from __future__ import annotations

import argparse
import sys

from stoichgen.chem.oxidation import OXIDATION_TABLES
from stoichgen.cli.common import COMMANDS, int_in
from stoichgen.data import read_table
from stoichgen.errors import InputError
from stoichgen.space.formulas import MAX_ENUMERATION_ATOMS
from stoichgen.space.score import OBJECTIVES


def _screen(args: argparse.Namespace) -> int:
    from stoichgen.screen import ScreenSpec, run_screen

    if args.target is not None and args.objective == "stability":
        raise InputError("give --target or --objective stability, not both")
    candidates: tuple[str, ...] = ()
    if args.candidates is not None:
        table = read_table(args.candidates, args.composition_column, args.composition_column)
        candidates = tuple(table[args.composition_column])
    elif args.elements is None:
        raise InputError("give --elements A,B,.. to enumerate, or --candidates FILE to rank your own list")
    spec = ScreenSpec(
        elements=tuple(s.strip() for s in args.elements.split(",")) if args.elements else (),
        min_elements=args.min_elements, max_elements=args.max_elements, max_atoms=args.max_atoms,
        oxidation=args.oxidation, target=args.target, objective=args.objective, top=args.top,
        candidates=candidates, chunk_rows=args.chunk_rows, surrogate=args.surrogate or "",
    )  # fmt: skip
    try:
        result = run_screen(
            spec, args.output, workers=args.workers, ray=args.ray, force=args.force,
            log=lambda text: print(f"stoichgen: {text}", file=sys.stderr, flush=True),
        )  # fmt: skip
    except KeyboardInterrupt:
        print(
            "stoichgen: the same command again resumes the screen; finished chunks are kept", file=sys.stderr
        )
        raise
    rate = result.screened / result.seconds if result.seconds > 0 else float("nan")
    print(
        f"stoichgen: screened {result.screened:,} rows in {result.chunks} chunks ({result.skipped} done "
        f"before) in {result.seconds:.1f} s ({rate:,.0f} rows/s, {result.backend}); "
        f"wrote {result.rows:,} rows to {result.path}",
        file=sys.stderr,
    )
    return 0


def add_screen(commands) -> None:
    sc = commands.add_parser(
        "screen",
        help=COMMANDS["screen"][1],
        description="Enumerate every reduced formula over subsets of --elements (each element's count "
        ">= 1, gcd 1, at most --max-atoms atoms, --min-elements to --max-elements elements) that is exactly "
        "neutral for one oxidation state per element, built not filtered; score each with the bundled "
        "surrogate (mean and spread), SMACT validity, known or new, the nearest known compound, e_above_hull "
        "and the guided search's score; write Parquet. Chunks are written as they finish: rerun the same "
        "command after an interruption and finished chunks are skipped. Output is identical whatever "
        "--workers or --ray.",
    )
    sc.add_argument("--elements", metavar="A,B,..", help="the elements to enumerate over")
    sc.add_argument("--candidates", metavar="CSV", help="rank your own formulas instead of enumerating")
    sc.add_argument("--composition-column", default="formula", metavar="C", help="with --candidates")
    sc.add_argument("--min-elements", type=int_in(1, 40), default=2, metavar="K", help="default 2")
    sc.add_argument("--max-elements", type=int_in(1, 40), default=4, metavar="K", help="default 4")
    sc.add_argument(
        "--max-atoms", type=int_in(2, MAX_ENUMERATION_ATOMS), default=20, metavar="N",
        help="atoms per reduced formula unit (default 20)",
    )  # fmt: skip
    sc.add_argument(
        "--oxidation", choices=OXIDATION_TABLES, default="common",
        help="oxidation states: common (pymatgen's common states, default), icsd (SMACT's ICSD-24 states, as "
        "the guided search) or all; cations less electronegative than anions, or metals only",
    )  # fmt: skip
    sc.add_argument("--target", type=float, metavar="Y", help="score by the distance to this property")
    sc.add_argument("--objective", choices=OBJECTIVES, default="target", help="or 'stability'")
    sc.add_argument("--top", type=int_in(1, 10_000_000), metavar="K", help="keep the best K rows by score")
    sc.add_argument("--surrogate", metavar="RUN_DIR", help="a surrogate run (default: the bundled one)")
    sc.add_argument(
        "--workers", type=int_in(1, 1024), metavar="N",
        help="local worker processes (default: the machine's cores); with --ray local, Ray's CPUs",
    )  # fmt: skip
    sc.add_argument(
        "--ray", nargs="?", const="auto", metavar="ADDRESS",
        help="run the chunks as Ray tasks on a running cluster (ADDRESS, default auto), or 'local'",
    )  # fmt: skip
    sc.add_argument("--chunk-rows", type=int_in(1, 10_000_000), default=50_000, help=argparse.SUPPRESS)
    sc.add_argument("-o", "--output", required=True, metavar="FILE.parquet")
    sc.add_argument("--force", action="store_true", help="overwrite an existing output file")
    sc.set_defaults(handler=_screen)
