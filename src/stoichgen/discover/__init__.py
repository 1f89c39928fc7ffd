"""The user's main job: generating candidate compositions (constraints, pipeline, output schema)."""

from stoichgen.discover.pipeline import Generator

__all__ = ["Generator"]
