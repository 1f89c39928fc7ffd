"""What a verification does and how much it may spend: ``VerifyOptions``, ``VerifyError``, the extra.

>>> VerifyOptions().fingerprint() == VerifyOptions().fingerprint()
True
>>> VerifyOptions(trials=0)
Traceback (most recent call last):
...
stoichgen.verify.options.VerifyError: trials must be an integer between 1 and 1000, got 0
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import asdict, dataclass

from stoichgen.errors import StoichgenError, check_int, check_number

__all__ = ["DEFAULT_OPTIONS", "EXTRA_HINT", "VERIFY_VERSION", "VerifyError", "VerifyOptions", "require_extra"]

# bumped whenever the search or the energies it reports change: a cached result of another version is
# never reused
VERIFY_VERSION = 1
EXTRA_HINT = 'verification needs the verify extra: pip install "stoichgen[verify]" (chgnet, pyxtal, ase)'
_EXTRA_MODULES = ("chgnet", "pyxtal", "ase")


class VerifyError(StoichgenError):
    """A verification that cannot be run: the extra missing, a bad formula or option."""


def require_extra() -> None:
    """Raise ``VerifyError`` (one line saying what to install) when chgnet, pyxtal or ase is missing."""
    missing = [name for name in _EXTRA_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise VerifyError(f"{EXTRA_HINT}; missing: {', '.join(missing)}", field="verify")


@dataclass(frozen=True)
class VerifyOptions:
    """The structure search of one composition.

    Args:
        trials: random structures generated and relaxed (space groups drawn, formula units 1..Z cycled).
        max_cell_atoms: Z is the largest number of formula units whose cell holds at most this many
            atoms (at least 1).
        steps: FIRE steps per relaxation at most (cell and positions).
        fmax: force (eV/Å) below which a relaxation has converged.
        budget_s: seconds per composition; trials not started when it is spent are skipped (the row
            says how many ran), so a large formula cannot stall a batch.
        seed: the random seed of the search (each composition's trials derive from it and its formula).

    >>> VerifyOptions(trials=2, steps=50).trials
    2
    """

    trials: int = 4
    max_cell_atoms: int = 16
    steps: int = 150
    fmax: float = 0.1
    budget_s: float = 60.0
    seed: int = 0

    def __post_init__(self) -> None:
        try:
            check_int(self.trials, "trials", minimum=1, maximum=1000)
            check_int(self.max_cell_atoms, "max_cell_atoms", minimum=1, maximum=200)
            check_int(self.steps, "steps", minimum=1, maximum=100_000)
            check_int(self.seed, "seed", minimum=0)
            for name, low in (("fmax", 1e-4), ("budget_s", 1.0)):
                if check_number(getattr(self, name), name) < low:
                    raise VerifyError(f"{name} must be >= {low:g}, got {getattr(self, name)!r}", field=name)
        except StoichgenError as err:
            raise VerifyError(str(err), field=err.field) from None

    def fingerprint(self) -> str:
        """A short digest of every setting that changes a result (the budget included: it can cut
        trials), and of the code's version; the cache's key beside the formula."""
        text = json.dumps({"version": VERIFY_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


DEFAULT_OPTIONS = VerifyOptions()
