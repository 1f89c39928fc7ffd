"""stoichgen: composition-level inverse design of inorganic materials (Sawada et al. 2019).

>>> import stoichgen
>>> df = stoichgen.Generator.default().generate(-2.0, n=4, seed=0)
>>> len(df)
4
>>> from stoichgen.train import train
>>> result = train("cgan", "bp", "runs/cgan-bp")          # doctest: +SKIP

Importing the package loads nothing heavy: ``stoichgen.Generator`` loads what generation needs (torch,
pymatgen) on first use, so ``stoichgen --help`` and the light modules start at once; the training code
(``stoichgen.train``) is never loaded by generation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stoichgen.errors import StoichgenError, StoichgenWarning

if TYPE_CHECKING:
    from stoichgen.discover.pipeline import Generator

__all__ = ["Generator", "StoichgenError", "StoichgenWarning"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:  # PEP 562: the generator's heavy imports wait for its first use
    if name == "Generator":
        from stoichgen.discover.pipeline import Generator

        return Generator
    raise AttributeError(f"module 'stoichgen' has no attribute {name!r}")
