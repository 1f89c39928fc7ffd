"""A target out of the system's reach says so, once, with the closest reachable value (issue 25,
chemist's point: at -3.0 over Li-Mn-Fe-O the best prediction was -2.12 and nothing said so)."""

from __future__ import annotations

import re
import warnings

import pytest
from fastapi.testclient import TestClient

from stoichgen.discover.pipeline import Generator
from stoichgen.errors import GenerateWarning
from stoichgen.web.app import create_app

SYSTEM = "Li,Mn,Fe,O"


def _reach_warnings(targets) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", GenerateWarning)
        frame = Generator.default().generate(targets, n=3, elements=SYSTEM)
    assert len(frame)
    return [str(w.message) for w in caught if "out of reach" in str(w.message)]


def test_an_unreachable_target_warns_once_with_the_closest_value():
    (message,) = _reach_warnings(-3.0)
    closest = float(re.search(r"searched is (-?\d+\.\d+)", message).group(1))
    assert message.startswith("target -3 is out of reach") and -2.5 < closest < -1.5


@pytest.mark.parametrize("targets", [-2.0, [-2.0, -1.5]])
def test_a_reachable_target_does_not_warn(targets):
    assert _reach_warnings(targets) == []


def test_each_unreachable_target_of_several_warns_and_the_page_shows_it():
    assert [m.split(" is")[0] for m in _reach_warnings([-3.0, -2.0, -3.2])] == ["target -3", "target -3.2"]
    answer = TestClient(create_app()).post("/api/generate", json={"target": -3.0, "n": 3, "elements": SYSTEM})
    assert answer.status_code == 200
    assert sum("out of reach" in w for w in answer.json()["warnings"]) == 1
