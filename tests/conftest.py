from __future__ import annotations

from pathlib import Path

import pytest

from stoichgen.data import load_mp_formation_energy


@pytest.fixture
def write_csv(tmp_path: Path):
    """Write a CSV from text and return its path."""

    def write(text: str, name: str = "data.csv") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


@pytest.fixture(scope="session")
def small_csv(tmp_path_factory):
    """600 real MP rows: enough for a 64-row batch after the split, fast to load."""
    frame = load_mp_formation_energy().frame.iloc[:600]
    path = tmp_path_factory.mktemp("data") / "small.csv"
    frame[["formula", "property"]].rename(columns={"formula": "composition"}).to_csv(path, index=False)
    return path
