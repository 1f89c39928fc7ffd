"""What every command shares: exit codes, the library's words mapped to flags, integer ranges."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from stoichgen.errors import SEED_MAX

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
