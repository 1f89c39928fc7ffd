"""The ``stoichgen`` command line.

stoichgen data info                      # the bundled Materials Project set
stoichgen data info --csv my.csv --composition-column formula --property-column band_gap
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from stoichgen.data import DataError, Dataset, load_csv, load_mp_formation_energy


class CliError(Exception):
    """A user error: printed without a traceback, exit code 2."""


def _add_data_source(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--csv", metavar="PATH", help="your own CSV instead of the bundled MP set")
    parser.add_argument("--composition-column", default="composition", metavar="C")
    parser.add_argument("--property-column", default="property", metavar="P")


def load_data_from_args(args: argparse.Namespace) -> Dataset:
    if args.csv is None:
        return load_mp_formation_energy()
    return load_csv(args.csv, args.composition_column, args.property_column)


def _data_info(args: argparse.Namespace) -> int:
    dataset = load_data_from_args(args)
    y = dataset.y
    print(f"rows: {len(dataset)}")
    print(f"elements: {len(dataset.vocabulary)} ({' '.join(dataset.vocabulary.symbols)})")
    print(f"property {dataset.property_name!r}: min {y.min():.4g}, max {y.max():.4g}, mean {y.mean():.4g}")
    print(f"columns: x^b {dataset.x_b().shape[1]}, x^bp {dataset.x_bp().shape[1]}")
    print("load report:")
    print(dataset.report.summary())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stoichgen",
        description="Generate inorganic compositions at a target property (Sawada et al. 2019).",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    data = commands.add_parser("data", help="inspect the bundled data set or your own CSV")
    data_commands = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    info = data_commands.add_parser("info", help="row count, elements, property range, bad-row report")
    _add_data_source(info)
    info.set_defaults(handler=_data_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (DataError, CliError) as err:
        print(f"stoichgen: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
