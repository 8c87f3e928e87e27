"""The stream explorer's page and JSON API, on the worker's web server or standalone.

* ``GET /explore``: the page (streams/explore_page/; uPlot vendored, no build step).
* ``GET /explore/static/{name}``: its script, styles and chart library.
* ``GET /explore/api/series?stream=&from=&to=`` (or ``at=`` and ``window=``, or ``window=``
  ending now; ``limit=`` points, default 100,000): the stream's values, expected band,
  scores, thresholds, anomalies and detectors (:class:`streams.explore.StreamReader`).
* ``GET /explore/api/incidents?stream=&from=&to=``: incidents overlapping the window, with
  their transitions and feedback, from the alerts topic.
* ``GET /explore/api/streams?prefix=``: streams that scored recently, by id prefix.
* ``POST /explore/api/feedback``: ``{"incident_id", "stream", "kind", "by", "comment"}``,
  published to the feedback topic like ``pynomaly feedback``. With
  ``PYNOMALY_CONTROL_TOKEN`` set it needs ``Authorization: Bearer <token>``; without one it
  is refused unless the server binds a loopback address.

Bad parameters answer 400 with a message naming the parameter; Kafka trouble answers 503.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from importlib import resources
from typing import Any

import faust
import orjson
from aiohttp import web as aioweb
from faust import web

from streams.alerting.feedback_cli import LABELS, feedback_record, publish_feedback
from streams.explore import StreamReader
from streams.settings import Settings

log = logging.getLogger(__name__)

WINDOWS = {"1h": 3600.0, "6h": 6 * 3600.0, "24h": 86400.0, "7d": 7 * 86400.0}
MAX_WINDOW_S = 31 * 86400.0
DEFAULT_LIMIT, MAX_LIMIT = 100_000, 500_000
STATIC = {"explore.js": "text/javascript", "explore.css": "text/css", "uPlot.iife.min.js": "text/javascript",
          "uPlot.min.css": "text/css", "LICENSE.uPlot": "text/plain"}
LOOPBACK = ("127.0.0.1", "localhost", "::1")
PAGE_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:",
                "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}

Reply = tuple[int, str, bytes]  # status, content type, body
Publish = Callable[[Settings, dict[str, Any]], Awaitable[None]]


class BadParameter(ValueError):
    """A query parameter is wrong; the message names it and the expected form."""


def _time(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
        except ValueError:
            raise BadParameter(f"'{name}' must be Unix seconds or RFC 3339 "
                               f"(2026-11-26T10:00:00Z), got {text[:40]!r}") from None
    if not math.isfinite(value) or value < 0:
        raise BadParameter(f"'{name}' must be a finite time after 1970, got {text[:40]!r}")
    return value


def _window_s(text: str) -> float:
    if text in WINDOWS:
        return WINDOWS[text]
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd]?)", text)
    if not m:
        raise BadParameter(f"'window' must be one of {', '.join(WINDOWS)} or seconds (e.g. 900), "
                           f"got {text[:40]!r}")
    value = float(m[1]) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m[2]]
    if not 0 < value <= MAX_WINDOW_S:
        raise BadParameter(f"'window' must be between 1 s and 31 d, got {text[:40]!r}")
    return value


def time_range(q: Mapping[str, str], now: float) -> tuple[float, float]:
    """[from, to] from ``from``+``to``, ``at``+``window`` (centred) or ``window`` (ending now)."""
    window = _window_s(q.get("window", "6h"))
    if "from" in q or "to" in q:
        start = _time("from", q["from"]) if "from" in q else _time("to", q["to"]) - window
        end = _time("to", q["to"]) if "to" in q else start + window
    elif "at" in q:
        at = _time("at", q["at"])
        start, end = at - window / 2, at + window / 2
    else:
        start, end = now - window, now
    if end <= start:
        raise BadParameter("'to' must be after 'from'")
    if end - start > MAX_WINDOW_S:
        raise BadParameter("the window is longer than 31 days: narrow 'from'..'to'")
    return start, end


def _stream(q: Mapping[str, str]) -> str:
    stream = q.get("stream", "")
    if not stream.strip():
        raise BadParameter("'stream' is required: the stream id (search by prefix with /explore/api/streams)")
    if len(stream) > 256:
        raise BadParameter("'stream' is longer than 256 characters: stream ids are at most 256")
    return stream


def _limit(q: Mapping[str, str], default: int, most: int) -> int:
    text = q.get("limit", str(default))
    if not text.isdigit() or not 1 <= int(text) <= most:
        raise BadParameter(f"'limit' must be an integer from 1 to {most}, got {text[:40]!r}")
    return int(text)


def _json(status: int, doc: Any) -> Reply:
    return status, "application/json", orjson.dumps(doc)


def _error(status: int, error: str, message: str) -> Reply:
    return _json(status, {"error": error, "message": message})


class ExploreAPI:
    """Routes of the explorer, independent of the web framework."""

    def __init__(self, settings: Settings, reader: StreamReader, token: str = "", bind_host: str = "127.0.0.1",
                 publish: Publish = publish_feedback, now: Callable[[], float] | None = None,
                 concurrency: int = 4) -> None:
        self.settings, self.reader, self.publish = settings, reader, publish
        self.now = now or reader.clock
        self._token = token.encode()
        self._open_writes = bind_host in LOOPBACK
        self._busy = asyncio.Semaphore(concurrency)  # each read holds a consumer: bound them

    async def handle(self, method: str, route: str, query: Mapping[str, str], headers: Mapping[str, str],
                     body: bytes) -> Reply:
        try:
            if route == "page" and method == "GET":
                return 200, "text/html; charset=utf-8", _asset("index.html")
            if route.startswith("static/") and method == "GET":
                name = route.removeprefix("static/")
                if name not in STATIC:
                    return _error(404, "not_found", f"no explorer file {name[:60]!r}")
                return 200, STATIC[name] + "; charset=utf-8", _asset(name)
            if route == "api/feedback" and method == "POST":
                return await self.feedback(headers, body)
            if method != "GET" or route not in ("api/series", "api/incidents", "api/streams"):
                return _error(405 if route.startswith("api/") else 404, "not_found",
                              f"{method} /explore/{route[:60]} is not served: GET api/series, "
                              "api/incidents, api/streams; POST api/feedback")
            async with self._busy:
                return await self._read(route, query)
        except BadParameter as exc:
            return _error(400, "bad_request", str(exc))
        except Exception as exc:  # Kafka unreachable or slow: say so, never crash the view
            log.warning("explore %s /%s failed: %s", method, route, type(exc).__name__)
            return _error(503, "unavailable", f"{type(exc).__name__} reading Kafka at "
                          f"{self.settings.kafka_bootstrap}; retry, or check the broker")

    async def _read(self, route: str, q: Mapping[str, str]) -> Reply:
        if route == "api/streams":
            prefix = q.get("prefix", "")
            if len(prefix) > 256:
                raise BadParameter("'prefix' is longer than 256 characters")
            return _json(200, await self.reader.streams(prefix, _limit(q, 100, 1000)))
        stream = _stream(q)
        start, end = time_range(q, self.now())
        if route == "api/series":
            return _json(200, await self.reader.series(stream, start, end,
                                                       _limit(q, DEFAULT_LIMIT, MAX_LIMIT)))
        return _json(200, await self.reader.incidents(stream, start, end))

    def _authorized(self, header: str | None) -> bool:
        scheme, _, given = (header or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self._token)

    async def feedback(self, headers: Mapping[str, str], body: bytes) -> Reply:
        if self._token and not self._authorized(headers.get("Authorization")):
            return _error(401, "unauthorized", "send 'Authorization: Bearer <token>' with the "
                          "PYNOMALY_CONTROL_TOKEN (the page asks for it)")
        if not self._token and not self._open_writes:
            return _error(403, "forbidden", "feedback from the page needs PYNOMALY_CONTROL_TOKEN when the "
                          "server is not bound to 127.0.0.1; use `pynomaly feedback` meanwhile")
        if "json" not in headers.get("Content-Type", ""):
            raise BadParameter("send the feedback as JSON (Content-Type: application/json)")
        try:
            doc = orjson.loads(body or b"null")
        except orjson.JSONDecodeError:
            raise BadParameter("the body is not valid JSON") from None
        if not isinstance(doc, dict):
            raise BadParameter("the body must be a JSON object: incident_id, stream, kind")
        kind, incident, stream = doc.get("kind"), doc.get("incident_id"), doc.get("stream")
        if kind not in LABELS:
            raise BadParameter(f"'kind' must be one of {', '.join(LABELS)}")
        if not isinstance(incident, str) or not incident.strip():
            raise BadParameter("'incident_id' is required (inc-...)")
        _stream({"stream": stream if isinstance(stream, str) else ""})
        record = feedback_record(kind, incident, str(stream), None, str(doc.get("by", ""))[:200],
                                 str(doc.get("comment", ""))[:1000], ts=self.now())
        await self.publish(self.settings, record)
        return _json(202, {"published": record, "topic": self.settings.topic_feedback})


def _asset(name: str) -> bytes:
    return resources.files("streams").joinpath("explore_page", name).read_bytes()


ROUTES = (("/explore", "page"), ("/explore/static/{name}", "static"), ("/explore/api/{name}", "api"))


def _route(kind: str, name: str) -> str:
    return kind if kind == "page" else f"{kind}/{name}"


def register_explore_views(app: faust.App, api: ExploreAPI) -> None:
    """Add the explorer's page and API to ``app``'s (Faust) web server."""

    def view(kind: str) -> type[web.View]:
        class ExploreView(web.View):
            async def _serve(self, request: web.Request, name: str = "") -> web.Response:
                raw: Any = request  # aiohttp's request under Faust's aiohttp driver
                body = await raw.read() if raw.method == "POST" else b""
                status, ctype, payload = await api.handle(raw.method, _route(kind, name), raw.query,
                                                          raw.headers, body)
                return self.bytes(payload, content_type=ctype.split(";")[0], status=status,
                                  headers=PAGE_HEADERS)

            async def get(self, request: web.Request, **kw: Any) -> web.Response:
                return await self._serve(request, kw.get("name", ""))

            async def post(self, request: web.Request, **kw: Any) -> web.Response:
                return await self._serve(request, kw.get("name", ""))

        return ExploreView

    for path, kind in ROUTES:
        app.page(path, name=f"pynomaly_explore_{kind}")(view(kind))


def explore_app(api: ExploreAPI) -> aioweb.Application:
    """The same routes on a bare aiohttp application (``pynomaly explore``)."""

    async def serve(request: aioweb.Request) -> aioweb.Response:
        kind = request.match_info.route.name or "page"
        body = await request.read() if request.method == "POST" else b""
        status, ctype, payload = await api.handle(request.method, _route(kind, request.match_info.get("name", "")),
                                                  request.query, request.headers, body)
        return aioweb.Response(body=payload, status=status, content_type=ctype.split(";")[0],
                               headers=PAGE_HEADERS)

    async def home(request: aioweb.Request) -> aioweb.Response:
        raise aioweb.HTTPFound("/explore")

    application = aioweb.Application()
    application.router.add_get("/", home)
    for path, kind in ROUTES:
        application.router.add_route("*", path, serve, name=kind)
    return application


def run_explore(settings: Settings, port: int, host: str) -> int:
    """`pynomaly explore`: serve the explorer until Ctrl-C."""
    from streams.alerting.settings import load_alerting_settings

    alerting = load_alerting_settings(table=settings.extra.get("alerting"))
    api = ExploreAPI(settings, StreamReader(settings), str(alerting.control_token), host)
    print(f"pynomaly: stream explorer on http://{host}:{port}/explore (Ctrl-C stops)", flush=True)
    aioweb.run_app(explore_app(api), host=host, port=port, print=None)
    return 0
