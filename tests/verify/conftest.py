"""Every verify test caches into its own folder: never the user's cache, never another test's result."""

import pytest


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STOICHGEN_CACHE", str(tmp_path / "cache"))
