"""The HTTP API of `stoichgen serve`: answers equal to the Python API's, a 4xx naming the field for every
bad input, limits, and ten concurrent requests."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx2
import pytest
from fastapi.testclient import TestClient

from stoichgen import Generator
from stoichgen.errors import RunError
from stoichgen.run import bundled_run_dir
from stoichgen.web.app import MAX_BODY_BYTES, MAX_REQUEST_ROWS, MAX_TARGETS, create_app, offered_models

SYMBOL = re.compile(r"[A-Z][a-z]?")


@pytest.fixture(scope="module")
def app():
    return create_app()


@pytest.fixture(scope="module")
def client(app):
    return TestClient(app)


def _post(client, **body):
    return client.post("/api/generate", json=body)


def test_models_lists_the_bundled_generators_with_their_ranges(client):
    answer = client.get("/api/models")
    assert answer.status_code == 200
    catalog = answer.json()
    names = [m["name"] for m in catalog["models"]]
    assert names == ["cgan-bp", "cvae-bp"]  # the default first; the surrogate is not a generator
    cgan = catalog["models"][0]
    generator = Generator.default()
    assert cgan["range"] == pytest.approx(list(generator.property_range))
    assert cgan["vocabulary"] == list(generator.vocabulary.symbols)
    assert cgan["methods"] == ["guided", "paper"] and cgan["objectives"] == ["target", "stability"]
    assert catalog["limits"]["n"] == MAX_REQUEST_ROWS
    cells = {c["symbol"]: (c["row"], c["column"]) for c in catalog["elements"]}
    assert len(cells) == 118 and len(set(cells.values())) == 118  # one place each
    assert (
        cells["H"] == (1, 1) and cells["Fe"] == (4, 8) and cells["La"] == (9, 3) and cells["Lr"] == (10, 17)
    )


def test_generate_answers_what_the_python_api_returns(client):
    body = {"target": -1.5, "n": 6, "elements": "Li,Mn,O", "require": ["O"], "seed": 3}
    answer = _post(client, **body)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    expected = Generator.default().generate(-1.5, n=6, elements="Li,Mn,O", require=["O"], seed=3)
    assert result["columns"] == list(expected.columns)
    assert [r["formula"] for r in result["rows"]] == list(expected["formula"])
    assert [r["predicted_property"] for r in result["rows"]] == pytest.approx(
        list(expected["predicted_property"])
    )
    assert result["counts"]["rows"] == 6 and result["counts"]["requested"] == 6
    assert result["counts"]["novel"] == int(expected["novel"].sum())
    assert result["targets"] == [-1.5] and result["warnings"] == []
    trace_names = [trace.get("name") for trace in result["hull"]["data"]]
    assert "candidates" in trace_names  # a ternary system: the hull picture comes along


def test_paper_method_extrapolation_warning_and_no_hull_beyond_ternary(client):
    answer = _post(client, target=5.0, n=4, method="paper", balance="exact", seed=1)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert len(result["rows"]) == 4 and "valence" in result["columns"]
    assert any("outside the model's training range" in w for w in result["warnings"])
    assert result["hull"] is None


def test_stability_objective_needs_no_target(client):
    answer = _post(client, objective="stability", n=5, elements=["Li", "Fe", "O"])
    assert answer.status_code == 200, answer.text
    rows = answer.json()["rows"]
    assert len(rows) == 5 and all(r["e_above_hull"] is not None for r in rows)
    assert answer.json()["targets"] == []


BAD_INPUTS = [
    ({"elements": ["Li", "Xx"]}, "elements", "unknown element symbol 'Xx'"),
    ({"require": "Qq"}, "require", "unknown element symbol 'Qq'"),
    ({"require": ["O"], "exclude": ["O"]}, "exclude", "contradictory constraints"),
    ({"elements": ["Li", "Fe"], "require": ["O"]}, "require", "contradictory constraints"),
    ({"require": ["Li", "Fe", "O"], "max_elements": 2}, "max_elements", "contradictory constraints"),
    # issue 25, row 2: minutes of search (and memory) on a server; the command line allows more
    ({"max_elements": 9}, "max_elements", "less than or equal to 6"),
    ({"target": [-3, -2, -1], "n": 50, "max_elements": 7}, "max_elements", "less than or equal to 6"),
    ({"elements": ["Og"]}, "elements", "not in the model's vocabulary"),
    ({"n": 0}, "n", "greater than or equal to 1"),
    ({"n": MAX_REQUEST_ROWS + 1}, "n", f"less than or equal to {MAX_REQUEST_ROWS}"),
    ({"n": "ten"}, "n", "valid integer"),
    ({"n": 2.5}, "n", "integer"),
    ({"target": [-1.0, -2.0], "n": MAX_REQUEST_ROWS}, "n", "candidates per request"),
    ({"target": "abc"}, "target", "valid number"),
    ({"target": None}, "target", "give a target"),
    ({"target": []}, "target", f"1 to {MAX_TARGETS} targets"),
    ({"target": [-1.0] * (MAX_TARGETS + 1), "n": 1}, "target", f"1 to {MAX_TARGETS} targets"),
    ({"target": float("nan")}, "target", "not a finite number"),
    ({"model": "nope"}, "model", "unknown model 'nope'"),
    ({"model": "../../etc/passwd"}, "model", "unknown model"),
    ({"method": "magic"}, "method", "'guided' or 'paper'"),
    ({"objective": "cheap"}, "objective", "'target' or 'stability'"),
    ({"balance": "exact"}, "balance", "applies to method 'paper' only"),
    ({"method": "paper", "objective": "stability"}, "objective", "applies to method 'guided' only"),
    ({"seed": -1}, "seed", "greater than or equal to 0"),
    ({"max_e_hull": "low"}, "max_e_hull", "valid number"),
    ({"max_atoms": 1000}, "max_atoms", "less than or equal to"),
    ({"threshold": 1.5}, "threshold", "less than 1"),
    ({"path": "/etc/passwd"}, "path", "unknown field 'path'"),
    ({"target": None, "target_range": [-1.0, -2.0]}, "target_range", "must be below the maximum"),
    ({"target_range": [-2.0, -1.0]}, "target_range", "a target or a target_range, not both"),
    ({"target": None, "target_range": [-2, -1], "objective": "stability"}, "target_range", "not 'stability'"),
    ({"target": None, "target_range": [-2.0, "x"]}, "target_range", "valid number"),
    ({"target": None, "target_range": [None, None]}, "target_range", "give a finite minimum"),
    # issue 25, row 10: JSON true was read as 1 (target 1.0); refused as the Python API refuses booleans
    ({"target": True}, "target", "true and false are only for yes/no fields"),
    ({"target": [-2.0, False]}, "target", "true and false are only for yes/no fields"),
    ({"n": True}, "n", "true and false are only for yes/no fields"),
    ({"max_e_hull": True}, "max_e_hull", "true and false are only for yes/no fields"),
    ({"seed": False}, "seed", "true and false are only for yes/no fields"),
    ({"target": None, "target_range": [True, None]}, "target_range", "true and false are only for yes/no"),
    ({"method": "paper", "threshold": True}, "threshold", "true and false are only for yes/no fields"),
]


@pytest.mark.parametrize(("change", "field", "words"), BAD_INPUTS, ids=[f for _, f, _ in BAD_INPUTS])
def test_bad_input_is_a_4xx_naming_the_field(client, change, field, words):
    body = {"target": -1.0, "n": 2, **change}
    answer = client.post(
        "/api/generate", content=json.dumps(body), headers={"content-type": "application/json"}
    )  # json.dumps: NaN goes through as the literal Python writes
    assert 400 <= answer.status_code < 500, answer.text
    error = answer.json()
    assert error["field"] == field and words in error["error"], error


@pytest.mark.parametrize(
    ("content", "status", "words"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 422, "JSON object"),
        (b"", 422, "JSON object"),
        (b" " * (MAX_BODY_BYTES + 1), 413, "at most"),
    ],
)
def test_bad_bodies_are_refused_whole(client, content, status, words):
    answer = client.post("/api/generate", content=content, headers={"content-type": "application/json"})
    assert answer.status_code == status and words in answer.json()["error"]
    assert answer.json()["field"] is None


def test_unknown_paths_and_methods_answer_in_the_same_shape(client):
    assert client.get("/api/nothing").json() == {"error": "Not Found", "field": None}
    assert client.get("/api/generate").status_code == 405


def test_nothing_a_user_can_send_is_a_500(client):
    """Every field with values of every JSON type: a 200 or a 4xx with an error, never a 500."""
    values = [None, "", "abc", "Li,O", -1, 0, 3, 1e308, True, [], ["Li"], [1, 2], {}]
    fields = ["model", "target", "n", "method", "objective", "elements", "require", "exclude", "max_elements",
              "max_atoms", "include_known", "max_e_hull", "seed", "balance", "oxidation", "threshold",
              "neutral_only", "unique", "max_rounds", "max_iterations"]  # fmt: skip
    for field in fields:
        for value in values:
            body = {"target": -1.0, "n": 2, "max_iterations": 50, field: value}
            answer = _post(client, **body)
            assert answer.status_code < 500, (field, value, answer.text)
            if answer.status_code >= 400:
                assert answer.json()["error"], (field, value)


def test_generation_slower_than_the_limit_is_a_503():
    slow = TestClient(create_app(time_limit_s=0.001))
    answer = _post(slow, target=-1.0, n=50)
    assert answer.status_code == 503 and "no answer within" in answer.json()["error"]


def test_a_full_queue_is_told_to_come_back():
    full = TestClient(create_app(queue_limit=0))
    answer = _post(full, target=-1.0, n=2)
    assert answer.status_code == 503 and "busy" in answer.json()["error"]


def test_models_given_on_the_command_line_are_offered_by_name(tmp_path):
    mine = tmp_path / "cgan-bp"
    shutil.copytree(bundled_run_dir("cgan-bp"), mine)
    offered = offered_models([mine])
    assert [o.name for o in offered] == ["cgan-bp", "cvae-bp", "cgan-bp-2"]  # never a path on the page
    assert offered[-1].run_dir == mine
    with pytest.raises(RunError):
        offered_models([tmp_path / "missing"])


MEMORY_ROUNDS = """
import asyncio, sys
from pathlib import Path
import httpx2
from stoichgen.web.app import create_app

def rss_mb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

app = create_app()
bodies = [{"target": -2.5 + 0.25 * k, "n": 8, "seed": k} for k in range(10)]

async def round_of_ten():
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://x") as http:
        answers = await asyncio.gather(*(http.post("/api/generate", json=b, timeout=300) for b in bodies))
    assert [a.status_code for a in answers] == [200] * 10

for _ in range(4):
    asyncio.run(round_of_ten())
    print(rss_mb(), flush=True)
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads VmRSS from /proc")
def test_memory_stays_bounded_over_rounds_of_ten_concurrent_requests():
    """Four rounds of ten concurrent requests in a fresh process (the test suite's own garbage would
    blur the numbers): after the first two rounds warm the caches (hull diagrams, substitution tables)
    and the allocator, two more add less than 50 MB."""
    out = subprocess.run([sys.executable, "-c", MEMORY_ROUNDS], capture_output=True, text=True, check=True)
    rss = [float(line) for line in out.stdout.split()]
    assert len(rss) == 4
    assert rss[3] - rss[1] < 50, f"resident memory over the rounds: {rss} MB"


@pytest.mark.slow
def test_ten_concurrent_requests_are_all_answered_one_generation_at_a_time(app, client):
    """Ten requests at once on one event loop: each answer equals the same request sent alone, and the
    generations ran one at a time."""
    generator = app.state.service.generator("cgan-bp")
    bodies = [{"target": -2.5 + 0.25 * k, "n": 8, "seed": k} for k in range(10)]
    alone = [_post(client, **body).json()["rows"] for body in bodies[:2]]
    running, most = 0, 0
    lock = threading.Lock()
    original = generator.generate

    def counted(*args, **kwargs):
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        try:
            time.sleep(0.05)  # widen the window in which two could overlap
            return original(*args, **kwargs)
        finally:
            with lock:
                running -= 1

    async def all_at_once():
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://stoichgen") as http:
            return await asyncio.gather(*(http.post("/api/generate", json=b, timeout=300) for b in bodies))

    generator.generate = counted
    try:
        answers = asyncio.run(all_at_once())
    finally:
        del generator.generate
    assert [a.status_code for a in answers] == [200] * 10
    assert [len(a.json()["rows"]) for a in answers] == [8] * 10
    assert [a.json()["targets"] for a in answers] == [[b["target"]] for b in bodies]
    assert [a.json()["rows"] for a in answers[:2]] == alone  # nothing mixed up between requests
    assert most == 1


def test_a_target_range_instead_of_a_target(app, client):
    """The range objective over HTTP: null leaves a side open; the rows are the Python API's."""
    answer = _post(client, target=None, target_range=[-2.2, None], n=3, elements="Li,Fe,P,O")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["target_range"] == [-2.2, None] and body["targets"] == []
    generator = app.state.service.generator("cgan-bp")
    expected = generator.generate(None, n=3, target_range=(-2.2, None), elements="Li,Fe,P,O")
    assert [r["formula"] for r in body["rows"]] == expected["formula"].tolist()
    assert [r["p_in_range"] for r in body["rows"]] == pytest.approx(expected["p_in_range"].tolist(), abs=1e-6)


def test_running_out_of_memory_is_a_503_with_json(monkeypatch):
    """Issue 25, row 2: a request that ran out of memory (several targets on a capped
    server) was an HTTP 500 in plain text. Now a 503 saying what to change; the server answers on."""
    import numpy as np

    from stoichgen.discover.pipeline import Generator

    def exhausted(*args, **kwargs):
        np.zeros((10**7, 10**7))  # numpy's _ArrayMemoryError, as search ran into

    fresh = TestClient(create_app(), raise_server_exceptions=False)
    monkeypatch.setattr(Generator, "generate", exhausted)
    for body in ({"target": -2, "n": 3, "max_elements": 6}, {"target": [-3, -2, -1], "n": 50}):
        answer = _post(fresh, **body)
        assert answer.status_code == 503 and "not enough memory" in answer.json()["error"], answer.text
    monkeypatch.undo()
    assert _post(fresh, target=-2, n=2).status_code == 200


def test_models_are_answered_while_generations_queue():
    """Issue 25, row 17: GET /api/models waited behind queued generations (or got a 503)."""
    import threading

    app = create_app(time_limit_s=5)
    service = app.state.service
    release = threading.Event()
    with TestClient(app) as fresh:
        fresh.get("/api/models")  # loads the models once
        service._worker.submit(release.wait, 30)  # the worker is busy with a long generation
        try:
            answer = fresh.get("/api/models")  # queued behind it, this would be a 503 after 5 s
            assert answer.status_code == 200 and answer.json()["models"]
        finally:
            release.set()
