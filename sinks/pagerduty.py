"""PagerDuty Events API v2 sink: trigger/acknowledge/resolve alerts keyed by incident id.

Contract (PagerDuty developer docs, Events API v2 "Send an Alert Event"): POST
``{base}/v2/enqueue`` with ``routing_key`` (32-char integration key), ``event_action``
(trigger | acknowledge | resolve), ``dedup_key`` (<= 255 chars); a trigger also needs
``payload.summary`` (<= 1024 chars), ``payload.source`` and ``payload.severity``
(critical | error | warning | info); ``payload.timestamp`` is ISO 8601. Answers: 202
accepted, 400 invalid event (final), 429 throttled and 5xx (retry with backoff).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from sinks.errors import SinkError
from sinks.http import HttpPoster, status_error
from sinks.notification import Notification, iso, truncate

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://events.pagerduty.com"
MAX_SUMMARY = 1024
MAX_DEDUP_KEY = 255
SEVERITIES = ("critical", "error", "warning", "info")
ACTIONS = {"trigger": "trigger", "update": "trigger", "group_trigger": "trigger",
           "resolve": "resolve", "group_resolve": "resolve", "acknowledge": "acknowledge"}


def render(n: Notification, routing_key: str, client_url: str | None = None) -> dict[str, Any]:
    """The Events API v2 body for ``n``; dedup_key is the incident (or group) id."""
    action = ACTIONS[n.kind]
    event: dict[str, Any] = {"routing_key": routing_key, "event_action": action,
                             "dedup_key": n.incident_id[:MAX_DEDUP_KEY]}
    if action != "trigger":
        return event  # acknowledge/resolve take only the key and the dedup_key
    details: dict[str, Any] = dict(n.summary_fields())
    if n.is_group:
        details["members"] = [
            {"stream": m.stream, "severity": m.severity, "peak_score": round(m.peak_score, 4),
             "incident_id": m.incident_id, "opened": iso(m.opened_at)} for m in n.members]
    if n.tags:
        details["tags"] = dict(n.tags)
    event["payload"] = {
        "summary": truncate(n.title, MAX_SUMMARY),
        "source": truncate(n.stream if not n.is_group else "pynomaly-stream", 255),
        "severity": n.severity if n.severity in SEVERITIES else "warning",
        "timestamp": iso(n.ts),
        "component": n.detector,
        "group": n.tags.get("service", "pynomaly"),
        "class": "anomaly",
        "custom_details": details,
    }
    event["client"] = "pynomaly-stream"
    if client_url:
        event["client_url"] = client_url
    links = [{"href": url, "text": text} for url, text in ((n.explore_url, "Stream explorer"),
                                                            (n.dashboard_url, "Grafana dashboard")) if url]
    if links:
        event["links"] = links
    return event


class PagerDutySink:
    """Sends Events API v2 events with one routing key (a secret: never logged)."""

    def __init__(self, routing_key: str, base_url: str = DEFAULT_BASE_URL,
                 name: str = "pagerduty", timeout_s: float = 10.0) -> None:
        self.name = name
        self._key = str.__str__(routing_key)
        self._url = str.__str__(base_url).rstrip("/") + "/v2/enqueue"
        self._http = HttpPoster(name, timeout_s)

    async def send(self, n: Notification) -> None:
        if n.kind not in ACTIONS:
            raise SinkError(f"{self.name}: cannot send a {n.kind!r} notification", retriable=False,
                            sink=self.name)
        body = orjson.dumps(render(n, self._key, None))
        resp = await self._http.post(self._url, body)
        if resp.status == 202:
            return
        if resp.status == 400:
            reasons = _errors(resp.text)
            log.warning("pagerduty %s rejected an event as invalid: %s", self.name, reasons)
            raise status_error(self.name, resp, "invalid_event",
                               f"PagerDuty says the event is invalid ({reasons}); please report it")
        hints = {401: "the routing key is not accepted; check PYNOMALY_PAGERDUTY_ROUTING_KEY",
                 403: "the routing key is not accepted; check PYNOMALY_PAGERDUTY_ROUTING_KEY",
                 404: "wrong endpoint; check PYNOMALY_PAGERDUTY_URL",
                 429: "throttled by PagerDuty; retrying with backoff"}
        log.warning("pagerduty %s answered HTTP %d", self.name, resp.status)
        raise status_error(self.name, resp, None, hints.get(resp.status, "PagerDuty unavailable"))

    async def close(self) -> None:
        await self._http.close()


def _errors(text: str) -> str:
    try:
        doc = orjson.loads(text)
        errs = doc.get("errors") or [doc.get("message", "")]
        return "; ".join(str(e) for e in errs)[:300]
    except (orjson.JSONDecodeError, AttributeError):
        return "no details"
