"""The user's main job: generating candidate compositions (constraints, pipeline, output schema)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stoichgen.discover.pipeline import Generator

__all__ = ["Generator"]


def __getattr__(name: str) -> Any:  # PEP 562: importing a light module of discover/ loads no model code
    if name == "Generator":
        from stoichgen.discover.pipeline import Generator

        return Generator
    raise AttributeError(f"module 'stoichgen.discover' has no attribute {name!r}")
