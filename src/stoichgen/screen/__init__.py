"""Screen a chemical space exhaustively (``stoichgen screen``): every charge-neutral formula over a set
of elements, or a user's list, scored like the guided search's candidates and ranked; local processes
or Ray. ``plan`` (what and in which chunks), ``scoring`` (one chunk), ``backends`` (where chunks are
scored, and the files)."""

from stoichgen.screen.backends import ScreenResult, run_screen
from stoichgen.screen.plan import ScreenError, ScreenSpec, plan
from stoichgen.screen.scoring import SCREEN_COLUMNS, Scorer

__all__ = ["SCREEN_COLUMNS", "ScreenError", "ScreenResult", "ScreenSpec", "Scorer", "plan", "run_screen"]
