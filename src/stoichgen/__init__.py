"""stoichgen: composition-level inverse design of inorganic materials (Sawada et al. 2019).

>>> import stoichgen
>>> run = stoichgen.train("cgan", "bp", "runs/cgan-bp")          # doctest: +SKIP
>>> df = stoichgen.Generator.from_run("runs/cgan-bp").generate(-2.0, n=256)  # doctest: +SKIP
"""

from __future__ import annotations

from stoichgen.generate import Generator
from stoichgen.train import train

__all__ = ["Generator", "train"]
__version__ = "0.1.0"
