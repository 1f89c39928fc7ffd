"""A second opinion from physics (``stoichgen verify``): each candidate gets a crystal structure from a
small random search (pyxtal) relaxed by a universal ML potential (CHGNet, through ASE), and a formation
energy and e_above_hull on the bundled data's footing. ``options`` (the search's settings, the extra),
``search`` (one composition), ``footing`` (references and anion shifts), ``batch`` (many, cached, on
local processes or Ray).

chgnet, pyxtal and ase (``pip install "stoichgen[verify]"``) are imported only when a search runs.
"""

from stoichgen.verify.batch import cache_dir, verify, verify_frame
from stoichgen.verify.options import EXTRA_HINT, VerifyError, VerifyOptions, require_extra

__all__ = ["EXTRA_HINT", "VerifyError", "VerifyOptions", "cache_dir", "require_extra", "verify",
           "verify_frame"]  # fmt: skip
