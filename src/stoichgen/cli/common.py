"""What every command shares: exit codes, the library's words mapped to flags, integer ranges."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from stoichgen.errors import SEED_MAX

# Every command: the module that builds its parser and runs it, and its one-line help. The command line
# imports only the module of the command it runs (cli/__init__.py), so `stoichgen --help` loads no model.
COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("runs", "inspect the bundled data set or your own CSV"),
    "train": ("runs", "train a CondGAN, CondVAE or DNN into a run directory"),
    "generate": ("discovery", "generate compositions at a target property"),
    "evaluate": ("runs", "the paper's Table 2 / Table 4 metrics for one run"),
    "hull": ("discovery", "where each row would sit on the convex hull of known compounds"),
    "screen": (
        "screen", "every charge-neutral formula over a set of elements (or your list), scored and ranked"
    ),
    "verify": ("verify", "a crystal structure and a formation energy from CHGNet for each candidate"),
    "reproduce": ("runs", "reproduce the paper's Tables 1-6 and Figure 1 into REPORT_DIR/report.md"),
    "serve": ("discovery", "the web page: a periodic table, a target, candidates with plots and downloads"),
}

EXIT_USER_ERROR = 2
# The library names its arguments in messages; the command line shows its own flags instead.
FLAG_NAMES = {
    "without resume=True": "without --resume",
    "resume=True": "--resume",
    "force=True": "--force",
    "model=RUN_DIR": "--model RUN_DIR",
    "out=DIR": "--out DIR",
}
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C


def int_in(minimum: int, maximum: int) -> Callable[[str], int]:
    """An argparse type: an integer within [minimum, maximum], else a usage error naming the range."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"{value} is outside {minimum}..{maximum:,}")
        return value

    return parse


SEED = int_in(0, SEED_MAX)
