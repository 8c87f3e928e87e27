"""Control endpoints on the worker's web server: incidents, silences, feedback.

* ``GET /incidents``: this worker's open incidents (JSON list).
* ``GET /silences``, ``POST /silences``: list / create a silence (``stream`` glob and/or
  ``tags`` globs, and an expiry: ``ends_at`` Unix seconds or ``duration_s``).
* ``DELETE /silences/{id}``: remove a silence created here.
* ``POST /feedback``: a feedback record (``kind`` false_positive, true_positive or ack,
  ``incident_id``, optional ``stream``, ``by``, ``comment``, ``ts``); published to the
  feedback topic keyed by stream, and applied by the agent that owns the stream.

With ``PYNOMALY_CONTROL_TOKEN`` set every request needs ``Authorization: Bearer <token>``
(401 otherwise); without one the worker refuses to serve them on a non-loopback address.
Bodies must be ``application/json`` (415 otherwise): a cross-site ``text/plain`` or form
POST from any web page needs no CORS preflight. Silences must not match every stream,
are capped in count and duration, act on this process's engine at once and are written to
the alerts audit log, as is every feedback; like ``[[alerting.silences]]`` they live in
memory, per worker.
"""

from __future__ import annotations

import dataclasses
import hmac
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import faust
import orjson
from faust import web

from streams.alerting.engine import AlertEngine, silence_doc
from streams.alerting.feedback import parse_feedback
from streams.alerting.feedback_cli import LABELS
from streams.alerting.records import InvalidRecord
from streams.alerting.settings import AlertingSettings
from streams.alerting.silences import silences_everything
from streams.errors import PynomalyError, SettingsError
from streams.settings import Settings, is_loopback_host

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes | None, bytes], Awaitable[None]]  # (topic, key, value), acked
Lookup = Callable[[str], Awaitable[tuple[str, str] | None]]  # incident id -> (stream, detector)
Reply = tuple[int, Any]


class ControlAPI:
    """The endpoints' logic, independent of the web framework (tests drive it over aiohttp)."""

    def __init__(self, engine: AlertEngine, alerts_topic: str, feedback_topic: str, publish: Publish,
                 token: str = "", lookup: Lookup | None = None,
                 clock: Callable[[], float] = time.time, max_silences: int = 1000,
                 max_silence_s: float = 7 * 86_400.0) -> None:
        self.engine, self.publish, self.lookup, self.clock = engine, publish, lookup, clock
        self.alerts_topic, self.feedback_topic = alerts_topic, feedback_topic
        self._token = token.encode()
        self.max_silences, self.max_silence_s = max_silences, max_silence_s

    def authorized(self, header: str | None) -> bool:
        if not self._token:
            return True
        scheme, _, given = (header or "").partition(" ")
        # compare_digest: the time taken does not reveal how much of the token matched
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self._token)

    async def handle(self, method: str, route: str, headers: Mapping[str, str], body: bytes,
                     silence_id: str = "") -> Reply:
        if not self.authorized(headers.get("Authorization")):
            return 401, {"error": "unauthorized", "message": "send 'Authorization: Bearer <token>' "
                         "with the worker's PYNOMALY_CONTROL_TOKEN"}
        if method in ("POST", "PUT") and not _is_json(headers.get("Content-Type")):
            return 415, {"error": "unsupported_media_type", "message": "send the body as JSON with "
                         "'Content-Type: application/json' (form and text/plain posts are refused)"}
        try:
            if route == "incidents" and method == "GET":
                return 200, [incident_doc(i) for i in self.engine.open_incidents()]
            if route == "silences" and method == "GET":
                return 200, self._silences()
            if route == "silences" and method == "POST":
                return await self.create_silence(_json(body))
            if route == "silence" and method == "DELETE":
                return await self.delete_silence(silence_id)
            if route == "feedback" and method == "POST":
                return await self.feedback(_json(body))
        except BadRequest as exc:
            return 400, {"error": "bad_request", "message": str(exc)}
        except Exception as exc:  # Kafka unreachable or slow: say so, do not crash the view
            log.warning("control %s /%s failed: %s", method, route, type(exc).__name__)
            return 503, {"error": "unavailable", "message": f"{type(exc).__name__} talking to Kafka; "
                         "nothing was changed unless GET /silences shows it; retry"}
        return 405, {"error": "method_not_allowed", "message": f"{method} is not supported here"}

    def _silences(self) -> list[dict[str, Any]]:
        return [silence_doc(s) for s in self.engine.silences.silences]

    async def create_silence(self, doc: Any) -> Reply:
        if not isinstance(doc, dict):
            raise BadRequest("the body must be a JSON object with stream and/or tags and an expiry")
        now = self.clock()
        stream, tags = doc.get("stream", "*"), doc.get("tags", {})
        if not isinstance(stream, str) or not stream:
            raise BadRequest("'stream' must be a non-empty glob such as 'payments.*'")
        if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
            raise BadRequest("'tags' must be an object of tag name -> glob (strings)")
        if silences_everything(stream, tags):
            raise BadRequest("give 'stream' or 'tags' a glob with a literal part (such as "
                             "'payments.*'): a silence of everything is refused")
        ends_at = doc.get("ends_at")
        if "duration_s" in doc:
            dur = doc["duration_s"]
            if isinstance(dur, bool) or not isinstance(dur, int | float) or not 0 < dur < math.inf:
                raise BadRequest("'duration_s' must be a positive number of seconds")
            ends_at = now + dur
        if isinstance(ends_at, bool) or not isinstance(ends_at, int | float) or not math.isfinite(ends_at):
            raise BadRequest("give an expiry: 'ends_at' (Unix seconds) or 'duration_s'")
        if ends_at <= now:
            raise BadRequest("'ends_at' is in the past: the silence would never apply")
        starts_at = doc.get("starts_at", now)
        if isinstance(starts_at, bool) or not isinstance(starts_at, int | float) \
                or not math.isfinite(starts_at):
            raise BadRequest("'starts_at' must be Unix seconds")
        if ends_at - max(now, starts_at) > self.max_silence_s:
            raise BadRequest(f"a silence may last at most {self.max_silence_s:.0f} s "
                             "(control_max_silence_s); renew it when it ends")
        if sum(1 for s in self.engine.silences.silences if s.id) >= self.max_silences:
            return 429, {"error": "too_many_silences", "message": f"{self.max_silences} silences are "
                         "in force (control_max_silences); delete some first"}
        fields = {"stream": stream, "tags": tags, "starts_at": starts_at, "ends_at": ends_at,
                  "comment": str(doc.get("comment", ""))[:1000]}
        try:
            audit = self.engine.add_silence(fields, f"sil-{uuid.uuid4().hex[:12]}", now)
        except PynomalyError as exc:
            raise BadRequest(str(exc)) from None
        audit["by"] = str(doc.get("by", ""))[:200]
        await self.publish(self.alerts_topic, b"silence", orjson.dumps(audit))
        return 201, {k: audit[k] for k in ("id", "stream", "tags", "starts_at", "ends_at", "comment")}

    async def delete_silence(self, silence_id: str) -> Reply:
        audit = self.engine.delete_silence(silence_id, self.clock())
        if audit is None:
            return 404, {"error": "not_found", "message": f"no silence {silence_id!r}; GET /silences "
                         "lists them (silences from the settings file cannot be deleted here)"}
        await self.publish(self.alerts_topic, b"silence", orjson.dumps(audit))
        return 200, {"deleted": silence_id}

    async def feedback(self, doc: Any) -> Reply:
        if isinstance(doc, dict) and "ts" not in doc:
            doc = {**doc, "ts": self.clock()}
        if isinstance(doc, dict) and doc.get("kind") not in LABELS:
            raise BadRequest(f"'kind' must be one of {', '.join(LABELS)} (silences: POST /silences)")
        try:
            fb = parse_feedback(doc, now=self.clock())
        except InvalidRecord as exc:
            raise BadRequest(exc.message) from None
        record = dict(doc)
        key = self.engine.known.get(fb.incident_id or "")
        if key is None and not fb.stream and self.lookup is not None:
            key = await self.lookup(fb.incident_id or "")
        if key is not None:
            record.setdefault("stream", key[0])
            record.setdefault("detector", key[1])
        if not record.get("stream"):
            return 404, {"error": "unknown_incident", "message": f"unknown incident {fb.incident_id!r}:"
                         " not in the alerts topic; check the id or give its 'stream'"}
        await self.publish(self.feedback_topic, str(record["stream"]).encode(), orjson.dumps(record))
        audit = {"type": "control", "action": "feedback", "ts": self.clock(), "kind": fb.kind,
                 "incident_id": fb.incident_id, "stream": record["stream"],
                 "by": str(record.get("by", ""))[:200], "comment": str(record.get("comment", ""))[:1000]}
        await self.publish(self.alerts_topic, b"control", orjson.dumps(audit))
        return 202, {"published": record}


class BadRequest(ValueError):
    """The request body is wrong; the message says which field and how to fix it."""


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json"


def check_exposure(settings: Settings, alerting_settings: AlertingSettings) -> None:
    """Refuse to serve the control endpoints beyond loopback without a token."""
    if not alerting_settings.control_token and not is_loopback_host(settings.web_host):
        raise SettingsError(
            f"the control endpoints (/silences, /feedback) would be served on {settings.web_host} "
            "without a token: set PYNOMALY_CONTROL_TOKEN to a long random secret, or bind the web "
            "server to 127.0.0.1 (PYNOMALY_WEB_HOST)")


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body or b"null")
    except orjson.JSONDecodeError:
        raise BadRequest("the body is not valid JSON") from None


def incident_doc(inc: Any) -> dict[str, Any]:
    """An open incident as JSON (without the bookkeeping fields)."""
    doc = dataclasses.asdict(inc)
    for k in ("seq", "last_update_ts", "partition", "resolved_at", "is_open"):
        doc.pop(k, None)
    return doc


def register_control_views(app: faust.App, settings: Settings, alerting_settings: AlertingSettings,
                           engine: AlertEngine, publish: Publish, lookup: Lookup | None = None) -> ControlAPI:
    """Add /incidents, /silences, /silences/{silence_id} and /feedback to ``app``'s web server."""
    check_exposure(settings, alerting_settings)
    api = ControlAPI(engine, settings.topic_alerts, settings.topic_feedback, publish,
                     alerting_settings.control_token.reveal(), lookup,
                     max_silences=alerting_settings.control_max_silences,
                     max_silence_s=alerting_settings.control_max_silence_s)

    def view(route: str) -> type[web.View]:
        class ControlView(web.View):
            async def _serve(self, request: web.Request, silence_id: str = "") -> web.Response:
                raw = request  # aiohttp's request under Faust's aiohttp driver
                body = await raw.read() if raw.method in ("POST", "PUT") else b""  # type: ignore[attr-defined]
                status, value = await api.handle(raw.method, route, raw.headers, body,  # type: ignore[attr-defined]
                                                 silence_id)
                headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
                return self.bytes(orjson.dumps(value), content_type="application/json", status=status,
                                  headers=headers)

            async def get(self, request: web.Request, **kw: Any) -> web.Response:
                return await self._serve(request, kw.get("silence_id", ""))

            async def post(self, request: web.Request, **kw: Any) -> web.Response:
                return await self._serve(request, kw.get("silence_id", ""))

            async def delete(self, request: web.Request, **kw: Any) -> web.Response:
                return await self._serve(request, kw.get("silence_id", ""))

        return ControlView

    for path, route in (("/incidents", "incidents"), ("/silences", "silences"),
                        ("/silences/{silence_id}", "silence"), ("/feedback", "feedback")):
        app.page(path, name=f"pynomaly_control_{route}")(view(route))
    return api
