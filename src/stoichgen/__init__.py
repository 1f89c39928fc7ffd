"""stoichgen: composition-level inverse design of inorganic materials (Sawada et al. 2019).

>>> import stoichgen
>>> df = stoichgen.Generator.default().generate(-2.0, n=4, seed=0)
>>> len(df)
4
>>> from stoichgen.train import train
>>> result = train("cgan", "bp", "runs/cgan-bp")          # doctest: +SKIP

Importing the package loads what generation needs, not the training code (``stoichgen.train``).
"""

from __future__ import annotations

from stoichgen.discover.pipeline import Generator
from stoichgen.errors import StoichgenError, StoichgenWarning

__all__ = ["Generator", "StoichgenError", "StoichgenWarning"]
__version__ = "0.1.0"
