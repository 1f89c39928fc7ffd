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
import importlib
import sys
from collections.abc import Sequence

from stoichgen.cli.common import COMMANDS, EXIT_INTERRUPTED, EXIT_USER_ERROR, FLAG_NAMES
from stoichgen.errors import StoichgenError

__all__ = ["COMMANDS", "build_parser", "main"]


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; given ``command``, that command's parser in full and the others by name
    and help only. A command's module loads what the command runs (torch, pymatgen: seconds), so the
    command line builds only the one it was asked for and ``stoichgen --help`` starts at once."""
    parser = argparse.ArgumentParser(
        prog="stoichgen",
        description="Generate inorganic compositions at a target property (Sawada et al. 2019).",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, summary) in COMMANDS.items():
        if command is None or name == command:
            getattr(importlib.import_module(f"stoichgen.cli.{module}"), f"add_{name}")(commands)
        else:
            commands.add_parser(name, help=summary)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for a user error, 130 when interrupted)."""
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(next((w for w in words if not w.startswith("-")), ""))
    try:
        args = parser.parse_args(words)
        return args.handler(args)
    except StoichgenError as err:
        message = str(err)
        for library_words, flag in FLAG_NAMES.items():
            message = message.replace(library_words, flag)
        print(f"stoichgen: error: {message}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("stoichgen: interrupted (files already written are kept)", file=sys.stderr)
        return EXIT_INTERRUPTED
