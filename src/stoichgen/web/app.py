"""The web page and its HTTP API (``stoichgen serve``): one page, no build step, works offline.

``GET /``: the page (``static/``; plotly.js from the installed ``plotly`` package, no CDN).
``GET /api/models``: the models offered (the bundled generators and those given to ``create_app``),
each with its property, training range, vocabulary, methods and objectives; the request limits; the
periodic table. ``POST /api/generate``: a JSON body with the Python API's fields (``Generator.generate``)
plus ``model`` -> ``{"rows": [...], "columns": [...], "warnings": [...], "counts": {...}, "hull": ...}``.

Anything a user can send that cannot be served is an HTTP 4xx with ``{"error": "...", "field": "..."}``
(``field``: the request field it is about, or null). Generations run one at a time, in the order they
arrive, on one worker thread (others queue, at most ``QUEUE_LIMIT``); each request has ``TIME_LIMIT_S``
seconds, queue included, after which it gets a 503.

>>> from fastapi.testclient import TestClient
>>> client = TestClient(create_app())
>>> answer = client.post("/api/generate", json={"target": "abc", "n": 4})
>>> answer.status_code, answer.json()["field"]
(422, 'target')
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import json
import math
import threading
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar

import plotly
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator
from pymatgen.core import Element
from starlette.exceptions import HTTPException

from stoichgen.discover.hull_table import hull_figure
from stoichgen.discover.options import OptionSpec, option_specs
from stoichgen.discover.pipeline import DEFAULT_MODEL, METHODS, Generator
from stoichgen.errors import StoichgenError, StoichgenWarning
from stoichgen.run import CHECKPOINT, RunRecord, bundled_run_dir
from stoichgen.space.score import OBJECTIVES

__all__ = ["MAX_BODY_BYTES", "MAX_REQUEST_ROWS", "MAX_TARGETS", "QUEUE_LIMIT", "TIME_LIMIT_S", "create_app"]

# candidates per request, all targets together: an answer in seconds, a table one can read
MAX_REQUEST_ROWS = 1_000
MAX_TARGETS = 10
MAX_BODY_BYTES = 16 * 1024  # a request is a few hundred bytes; anything near this is not the page's
QUEUE_LIMIT = 32  # requests waiting for the worker; more are told to come back (503)
TIME_LIMIT_S = 120.0  # per request, queue included
# where the page allows less than the Python API: the paper method's MH iterations (the authors' value),
# redraw rounds and elements per candidate, so that one request stays seconds of work (guided, n=3,
# target -2: max_elements 6 takes 10 s, 7 takes 45 s on 2 cores; the command line allows more)
WEB_LIMITS = {"max_iterations": 10_000, "max_rounds": 20, "max_elements": 6}
STATIC = Path(str(resources.files("stoichgen") / "web" / "static"))
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"

Symbols = str | list[str] | None  # "Li,O" or ["Li", "O"], as in the Python API


def _request_field(spec: OptionSpec, default: Any, high: float | None) -> tuple[Any, Any]:
    """A generation option as a pydantic field: its type, bounds and choices from ``discover.options``."""
    if spec.kind == "range":  # [A, B]; null leaves a side open (JSON has no infinity)
        return tuple[float | None, float | None] | None, Field(default, description=spec.help)
    if spec.kind == "symbols":
        return Symbols, Field(default, description=spec.help)
    if spec.kind == "bool":
        return bool, Field(default, description=spec.help)
    if spec.kind == "choice":
        return Literal[spec.choices], Field(default, description=spec.help)  # type: ignore[valid-type]
    if spec.kind == "int":
        kind = int if default is not None else int | None
        return kind, Field(default, ge=spec.low, le=high, description=spec.help)
    kind = float if default is not None else float | None
    if spec.open_interval:
        return kind, Field(default, gt=spec.low, lt=high, description=spec.help)
    return kind, Field(default, description=spec.help)


class RequestError(Exception):
    """A request that cannot be served: its HTTP status, message and the field it is about."""

    def __init__(self, status: int, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


class _RequestBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = DEFAULT_MODEL
    target: float | list[float] | None = Field(None, description="one value or a list of them")
    n: int = Field(64, ge=1, le=MAX_REQUEST_ROWS)
    method: Literal[METHODS] = "guided"  # type: ignore[valid-type]

    @model_validator(mode="before")
    @classmethod
    def _no_booleans(cls, data: Any) -> Any:
        """JSON true is not a number here (pydantic would read it as 1), as the Python API refuses it."""
        for name, value in data.items() if isinstance(data, dict) else ():
            field = cls.model_fields.get(name)
            inner = value if isinstance(value, list) else [value]
            if field is not None and field.annotation is not bool and any(isinstance(v, bool) for v in inner):
                message = f"{name}: {json.dumps(value)}: true and false are only for yes/no fields"
                raise RequestError(422, message, name)
        return data


# The body of ``POST /api/generate``: the model's name, the target(s), n, the method, and every option
# of every method (``discover.options``, declared once), with the page's tighter limits where it has any.
GenerateRequest = create_model(
    "GenerateRequest",
    __base__=_RequestBase,
    **{name: _request_field(spec, default, WEB_LIMITS.get(name, spec.high))
       for name, (spec, default, _methods) in option_specs().items()},  # fmt: skip
)


@dataclass
class Offered:
    """A model the server offers: its name on the page, its run directory, and once loaded, its generator."""

    name: str
    run_dir: Path
    generator: Generator | None = None


def offered_models(run_dirs: Sequence[Path | str] = ()) -> list[Offered]:
    """The bundled generator runs (the default first), then ``run_dirs`` named by their directory (a
    suffix ``-2``, ``-3``... where a name is taken). Each given run is loaded and checked now."""
    bundled = sorted(p for p in bundled_run_dir(DEFAULT_MODEL).parent.iterdir() if (p / CHECKPOINT).is_file())
    bundled = [p for p in bundled if RunRecord.load(p).kind.samples]
    bundled.sort(key=lambda p: p.name != DEFAULT_MODEL)
    offered = [Offered(p.name, p) for p in bundled]
    for given in run_dirs:
        generator = Generator.from_run(given)  # RunError naming the directory if it is not a generator run
        run_dir = generator.run_dir or Path(given)
        names = {o.name for o in offered}
        name, k = run_dir.name, 2
        while name in names:
            name, k = f"{run_dir.name}-{k}", k + 1
        offered.append(Offered(name, run_dir, generator))
    return offered


def periodic_table() -> list[dict[str, Any]]:
    """Every element with its place in the usual 18-column table (lanthanoids and actinoids in two rows
    below it), from pymatgen."""
    cells = []
    for z in range(1, 119):
        element = Element.from_Z(z)
        if 57 <= z <= 71 or 89 <= z <= 103:
            row, column = (9 if z <= 71 else 10), 3 + z - (57 if z <= 71 else 89)
        else:
            row, column = element.row, element.group
        cells.append(
            {"symbol": element.symbol, "name": element.long_name, "Z": z, "row": row, "column": column}
        )
    return cells


def _describe(offered: Offered) -> dict[str, Any]:
    generator = offered.generator
    assert generator is not None
    record = generator.sampler.record
    lo, hi = generator.property_range
    return {
        "name": offered.name,
        "kind": record.kind.label,
        "representation": record.representation,
        "data": record.data.describe(),
        "property": record.property_name,
        "range": [float(lo), float(hi)],
        "vocabulary": list(generator.vocabulary.symbols),
        "methods": [m for m in METHODS if m != "guided" or generator.surrogate is not None],
        "objectives": [o for o in OBJECTIVES if o != "stability" or generator.formation_energy],
        "formation_energy": generator.formation_energy,
    }


def _records(frame) -> list[dict[str, Any]]:
    """Rows as JSON objects (NaN as null)."""
    return json.loads(frame.to_json(orient="records", double_precision=6))


def _counts(frame, requested: int) -> dict[str, int]:
    counts = {"rows": len(frame), "requested": requested}
    for name in ("novel", "not_in_training", "charge_neutral", "smact_valid", "intermetallic"):
        if name in frame:
            counts[name] = int(frame[name].sum())
    if "e_above_hull" in frame:
        counts["below_or_on_hull"] = int((frame["e_above_hull"] <= 0).sum())
    for name, value in frame.attrs.items():
        if isinstance(value, int) and not isinstance(value, bool) and name not in ("n", "seed", "max_atoms"):
            counts[name] = value
    return counts


T = TypeVar("T")


class Service:
    """The models, loaded on first use, and the one worker thread that loads and generates."""

    def __init__(
        self, offered: list[Offered], time_limit_s: float = TIME_LIMIT_S, queue_limit: int = QUEUE_LIMIT
    ):
        self.offered = {o.name: o for o in offered}
        self.time_limit_s = time_limit_s
        self.queue_limit = queue_limit
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stoichgen-generate")
        self._waiting = 0
        self._loading = threading.Lock()

    def generator(self, name: str) -> Generator:
        offered = self.offered.get(name)
        if offered is None:
            raise RequestError(404, f"unknown model {name!r}; offered: {', '.join(self.offered)}", "model")
        with self._loading:
            if offered.generator is None:
                offered.generator = Generator.from_run(offered.run_dir)
        return offered.generator

    async def submit(self, work: Callable[[], T]) -> T:
        """``work()`` on the worker thread, after those before it; 503 when the queue is full or the time
        limit passes (a request still queued then is dropped; one already running finishes unseen)."""
        if self._waiting >= self.queue_limit:
            raise RequestError(
                503, f"the server is busy ({self._waiting} requests waiting); try again shortly"
            )
        self._waiting += 1
        try:
            future = asyncio.get_running_loop().run_in_executor(self._worker, work)
            return await asyncio.wait_for(future, self.time_limit_s)
        except TimeoutError:
            raise RequestError(
                503, f"no answer within {self.time_limit_s:g} s (queue included); ask for fewer candidates"
            ) from None
        finally:
            self._waiting -= 1

    def models(self) -> dict[str, Any]:
        """What ``GET /api/models`` answers (loads every offered model)."""
        for name in self.offered:
            self.generator(name)
        return {
            "models": [_describe(offered) for offered in self.offered.values()],
            "limits": {"n": MAX_REQUEST_ROWS, "targets": MAX_TARGETS, "time_s": self.time_limit_s},
            "elements": periodic_table(),
        }

    def generate(self, request: GenerateRequest) -> dict[str, Any]:
        """Serve one request (on the worker thread); the memory it freed goes back to the system."""
        try:
            return self._generate(request)
        finally:
            _release_freed_memory()

    def _generate(self, request: GenerateRequest) -> dict[str, Any]:
        generator = self.generator(request.model)
        targets = request.target
        if targets is None and request.objective == "target" and request.target_range is None:
            raise RequestError(422, "give a target property value (or a target_range, or the stability "
                               "objective)", "target")  # fmt: skip
        n_targets = len(targets) if isinstance(targets, list) else 1
        if isinstance(targets, list) and not 1 <= n_targets <= MAX_TARGETS:
            raise RequestError(422, f"give 1 to {MAX_TARGETS} targets, got {n_targets}", "target")
        if n_targets * request.n > MAX_REQUEST_ROWS:
            raise RequestError(
                422,
                f"{n_targets} targets x n={request.n} is more than {MAX_REQUEST_ROWS:,} candidates per "
                "request",
                "n",
            )
        arguments = request.model_dump(exclude={"model", "target"})
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", StoichgenWarning)
            frame = generator.generate(targets, **arguments)
        rows = _records(frame)
        figure = None
        if generator.hull is not None and request.method == "guided" and len(frame):
            figure = hull_figure(generator.hull, list(frame["formula"]), list(frame["predicted_property"]))
        lo, hi = generator.property_range
        return {
            "model": request.model,
            "property": generator.sampler.record.property_name,
            "range": [float(lo), float(hi)],
            "targets": [t for t in frame.attrs.get("targets", []) if not math.isnan(t)],
            "target_range": [v if math.isfinite(v) else None for v in frame.attrs.get("target_range", [])]
            or None,
            "columns": list(frame.columns),
            "rows": rows,
            "warnings": [str(w.message) for w in caught if issubclass(w.category, StoichgenWarning)],
            "counts": _counts(frame, n_targets * request.n),
            "hull": figure,
        }


@functools.cache
def _libc() -> Any:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def _release_freed_memory() -> None:
    """A long-running server's resident memory follows its peaks: glibc keeps freed blocks of a
    request's large temporary arrays (surrogate batches of tens of MB) in its pools. Hand them back
    (``malloc_trim``) after each request, so the page's memory stays bounded; a no-op elsewhere."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def _error(status: int, message: str, field: str | None) -> JSONResponse:
    return JSONResponse({"error": message, "field": field}, status_code=status)


def _validation_error(exc: RequestValidationError) -> JSONResponse:
    """pydantic's first complaint as ``{"error", "field"}``: the field is the top-level key it is about."""
    first = exc.errors()[0]
    location = [str(part) for part in first.get("loc", ())][1:]  # drop "body"
    if first.get("type") == "json_invalid":
        return _error(400, f"the request body is not valid JSON ({first.get('msg', '')})", None)
    field = location[0] if location and not location[0].isdigit() else None
    if field is None:
        return _error(422, f"the request body must be a JSON object of fields: {first.get('msg', '')}", None)
    message = f"{field}: {first.get('msg', 'invalid value')}"
    if first.get("type") == "extra_forbidden":
        message = f"unknown field {field!r}; the fields are {', '.join(GenerateRequest.model_fields)}"
    elif "input" in first:
        message += f" (got {json.dumps(first['input'], default=str)[:80]})"
    return _error(422, message, field)


class BodyLimit:
    """Refuses a request body over ``limit`` bytes (413) or without a declared length (411), before it
    is read."""

    def __init__(self, app, limit: int = MAX_BODY_BYTES):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH"):
            headers = dict(scope["headers"])
            length = headers.get(b"content-length")
            if length is None or not length.isdigit():
                return await _error(411, "send the request body with a Content-Length", None)(
                    scope, receive, send
                )
            if int(length) > self.limit:
                message = f"request body of {int(length):,} bytes; at most {self.limit:,}"
                return await _error(413, message, None)(scope, receive, send)
        return await self.app(scope, receive, send)


def create_app(
    run_dirs: Sequence[Path | str] = (), time_limit_s: float = TIME_LIMIT_S, queue_limit: int = QUEUE_LIMIT
) -> FastAPI:
    """The web app offering the bundled generators and the runs in ``run_dirs`` (checked now)."""
    service = Service(offered_models(run_dirs), time_limit_s, queue_limit)
    app = FastAPI(title="stoichgen", version="0.1.0", docs_url=None, redoc_url=None)
    app.state.service = service
    app.add_middleware(BodyLimit)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_error(exc)

    @app.exception_handler(RequestError)
    async def refused(request: Request, exc: RequestError) -> JSONResponse:
        return _error(exc.status, exc.message, exc.field)

    @app.exception_handler(StoichgenError)
    async def unservable(request: Request, exc: StoichgenError) -> JSONResponse:
        return _error(422, str(exc), exc.field)

    @app.exception_handler(MemoryError)
    async def too_big(request: Request, exc: MemoryError) -> JSONResponse:
        # numpy's _ArrayMemoryError included: the server lives on, the request is told what to change
        return _error(503, "not enough memory for this request on this server; ask for fewer candidates, "
                      "fewer elements (max_elements) or smaller formulas (max_atoms)", None)  # fmt: skip

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), None)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/plotly.min.js", include_in_schema=False)
    async def plotly_js() -> FileResponse:
        return FileResponse(PLOTLY_JS, media_type="text/javascript")

    @app.get("/api/models")
    async def models() -> dict[str, Any]:
        """The models offered, the request limits and the periodic table: answered at once, not queued
        behind generations (loading a model takes the loading lock, never the worker)."""
        return await asyncio.to_thread(service.models)

    @app.post("/api/generate")
    async def generate(request: GenerateRequest) -> dict[str, Any]:
        """Candidates for one request (see ``Generator.generate`` for the fields)."""
        return await service.submit(lambda: service.generate(request))

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
