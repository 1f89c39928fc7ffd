"""stoichgen: composition-level inverse design of inorganic materials (Sawada et al. 2019).

>>> import stoichgen
>>> run = stoichgen.train("cgan", "bp", "runs/cgan-bp")          # doctest: +SKIP
"""

from __future__ import annotations

from stoichgen.train import train

__all__ = ["train"]
__version__ = "0.1.0"
