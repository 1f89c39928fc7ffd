"""stoichgen: composition-level inverse design of inorganic materials (Sawada et al. 2019)."""

from __future__ import annotations

__version__ = "0.1.0"
