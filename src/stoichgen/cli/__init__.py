"""The ``stoichgen`` command line.

stoichgen data info                      # the bundled Materials Project set
stoichgen data info --csv my.csv --composition-column formula --property-column band_gap
stoichgen train --model cgan --repr bp --out runs/cgan-bp
stoichgen generate --model runs/cgan-bp --target -2.0 -n 256 --require O --exclude Pb,Hg,Cd -o out.csv
stoichgen evaluate runs/cgan-bp --targets test -n 256
stoichgen reproduce --quick --out reports/quick
stoichgen serve                          # the web page at http://127.0.0.1:8000
stoichgen verify out.csv --top 5 -o verified.csv   # a structure and a CHGNet energy per candidate
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from stoichgen.cli import discovery, runs, screen, verify
from stoichgen.cli.common import EXIT_INTERRUPTED, EXIT_USER_ERROR, FLAG_NAMES
from stoichgen.errors import StoichgenError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stoichgen",
        description="Generate inorganic compositions at a target property (Sawada et al. 2019).",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in (runs.add_data, runs.add_train, discovery.add_generate, runs.add_evaluate, discovery.add_hull,
                screen.add_screen, verify.add_verify, runs.add_reproduce, discovery.add_serve):  # fmt: skip
        add(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for a user error, 130 when interrupted)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return args.handler(args)
    except StoichgenError as err:
        message = str(err)
        for words, flag in FLAG_NAMES.items():
            message = message.replace(words, flag)
        print(f"stoichgen: error: {message}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("stoichgen: interrupted (files already written are kept)", file=sys.stderr)
        return EXIT_INTERRUPTED
