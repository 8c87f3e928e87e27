"""From alert records to notifications: routing, per-sink dedup and update throttling.

:class:`Notifier` decides, for each alert record, which sinks get which
:class:`~sinks.notification.Notification`. It keeps at most one trigger per incident per
sink (a redelivered record is not sent twice), sends updates only when severity
escalates and no more often than ``update_interval_s`` of event time, and skips
incidents that are suppressed (silence, cooldown, false positive) or grouped (their group
summary is sent instead).
"""

from __future__ import annotations

import collections
import dataclasses
import socket
import urllib.parse
from collections.abc import Mapping
from typing import Any

from sinks.notification import GroupMember, Notification
from streams.alerting.records import SEVERITY_RANK, parse_expected
from streams.alerting.routing import Router

# What each kind of sink is told. Machine sinks get everything; people get less.
ACCEPTS = {
    "pagerduty": {"trigger", "update", "resolve", "acknowledge", "group_trigger", "group_resolve"},
    "slack": {"trigger", "update", "resolve", "group_trigger", "group_resolve"},
    "teams": {"trigger", "update", "resolve", "group_trigger", "group_resolve"},
}
MACHINE = {"trigger", "update", "resolve", "acknowledge", "group_trigger", "group_resolve"}
ACTION_KIND = {("incident", "opened"): "trigger", ("incident", "updated"): "update",
               ("incident", "resolved"): "resolve", ("incident", "acknowledged"): "acknowledge",
               ("group", "opened"): "group_trigger", ("group", "resolved"): "group_resolve"}
SEEN_LIMIT = 100_000


def dashboard_link(base: str, uid: str, stream: str, start: float, end: float | None) -> str | None:
    """Grafana link to the stream's dashboard around the incident, or None without a base URL."""
    if not base:
        return None
    params = {"var-stream": stream, "from": str(int((start - 900) * 1000)),
              "to": str(int(((end or start) + 900) * 1000)) if end else "now"}
    return f"{base.rstrip('/')}/d/{urllib.parse.quote(uid)}?{urllib.parse.urlencode(params)}"


def explore_link(base: str, stream: str | None, at: float, incident_id: str) -> str | None:
    """The stream explorer around the incident (``/explore?stream=...&at=...``), or None
    without a base URL. Groups (no single stream) land on the explorer's search.

    >>> explore_link("http://w:6066", "a b", 1790000000.4, "inc-1")
    'http://w:6066/explore?stream=a+b&at=1790000000&window=6h&incident=inc-1'
    """
    if not base:
        return None
    params = {"stream": stream} if stream else {}
    params |= {"at": str(int(at)), "window": "6h", "incident": incident_id}
    return f"{base.rstrip('/')}/explore?{urllib.parse.urlencode(params)}"


def explore_base(configured: str, web_host: str, web_port: int) -> str:
    """``PYNOMALY_EXPLORE_URL``, else the worker's own web address (any worker serves any stream).

    >>> explore_base("", "0.0.0.0", 6066).endswith(":6066")
    True
    """
    if configured:
        return configured
    host = socket.getfqdn() if web_host in ("0.0.0.0", "::", "") else web_host  # noqa: S104
    return f"http://{f'[{host}]' if ':' in host else host}:{web_port}"


@dataclasses.dataclass
class _Sent:
    severity: str
    last_ts: float


class Notifier:
    def __init__(self, router: Router, dashboard_url: str = "", dashboard_uid: str = "pynomaly-detectors",
                 update_interval_s: float = 1800.0, top_n: int = 10, explore_url: str = "") -> None:
        self.router = router
        self.explore_url = explore_url
        self.dashboard_url, self.dashboard_uid = dashboard_url, dashboard_uid
        self.update_interval_s = update_interval_s
        self.top_n = top_n
        self.sent: dict[tuple[str, str], _Sent] = {}
        self.told: dict[str, set[str]] = {}  # incident/group id -> sinks that got a trigger
        self.seen: collections.OrderedDict[tuple[str, str, Any], None] = collections.OrderedDict()

    def reset(self) -> None:
        """Forget what was planned: records coming again after a failure are planned anew
        (a repeat is better than a notification planned, never sent, and then skipped)."""
        self.sent.clear()
        self.told.clear()
        self.seen.clear()

    def plan(self, rec: Mapping[str, Any]) -> list[tuple[str, Notification]]:
        """The (sink name, notification) pairs this alert record calls for."""
        kind = ACTION_KIND.get((rec.get("type"), rec.get("action")))  # type: ignore[arg-type]
        if kind is None:
            return []  # feedback audit records and unknown actions notify nobody
        if rec["type"] == "incident" and (rec.get("suppressed") or rec.get("group_id")):
            return []
        ident = rec.get("incident_id") or rec.get("group_id") or ""
        dedup = (ident, rec["action"], rec.get("seq"))
        if dedup in self.seen:
            return []  # redelivered record: already planned
        self.seen[dedup] = None
        while len(self.seen) > SEEN_LIMIT:
            self.seen.popitem(last=False)
        n = self.build(rec, kind)
        told = self.told.get(ident)
        if n.is_resolve and told is not None:
            sinks = sorted(told)  # resolve exactly where the trigger went
            del self.told[ident]
        elif rec["type"] == "group":
            sinks = []
            for stream, severity, tags in rec.get("routing") or [
                    (m["stream"], m["severity"], m.get("tags")) for m in rec.get("members", [])]:
                for s in self.router.sinks_for(stream, tags or {}, severity):
                    if s not in sinks:
                        sinks.append(s)
        else:
            sinks = self.router.sinks_for(n.stream, n.tags, n.severity)
        chosen = [s for s in sinks if self._wanted(s, n)]
        if chosen and not n.is_resolve and n.kind != "acknowledge":
            self.told.setdefault(ident, set()).update(chosen)
        return [(s, n) for s in chosen]

    def _wanted(self, sink: str, n: Notification) -> bool:
        if n.kind not in ACCEPTS.get(sink, MACHINE):
            return False
        key = (n.incident_id, sink)
        state = self.sent.get(key)
        if n.kind in ("trigger", "group_trigger"):
            if state is not None:
                return False  # one trigger per incident per sink
            self.sent[key] = _Sent(n.severity, n.ts)
            return True
        if n.kind == "update":
            if sink not in ACCEPTS:  # machine sinks take every (already throttled) update
                return True
            if state is None or SEVERITY_RANK[n.severity] <= SEVERITY_RANK[state.severity]:
                return False  # people hear again only when it gets worse...
            if n.ts - state.last_ts < self.update_interval_s and sink != "pagerduty":
                return False  # ...and not more often than update_interval_s
            state.severity, state.last_ts = n.severity, n.ts
            return True
        if n.is_resolve:
            self.sent.pop(key, None)  # sent even without a known trigger: at-least-once restarts
        return True

    def build(self, rec: Mapping[str, Any], kind: str) -> Notification:
        """The Notification for one alert record."""
        if rec["type"] == "group":
            members = tuple(GroupMember(m["incident_id"], m["stream"], m["severity"],
                                        float(m["peak_score"]), float(m["opened_at"]))
                            for m in rec.get("members", [])[: self.top_n])
            top = members[0] if members else None
            return Notification(
                kind=kind, incident_id=rec["group_id"], stream="*", detector="grouped",
                severity=rec["severity"], ts=float(rec["ts"]), opened_at=float(rec["window_start"]),
                score=top.peak_score if top else 0.0, peak_score=top.peak_score if top else 0.0,
                threshold=0.0, count=int(rec["member_count"]), members=members,
                member_count=int(rec["member_count"]),
                resolved_at=float(rec["ts"]) if kind == "group_resolve" else None,
                dashboard_url=dashboard_link(self.dashboard_url, self.dashboard_uid, "All",
                                             float(rec["window_start"]), None),
                explore_url=explore_link(self.explore_url, None, float(rec["window_start"]), rec["group_id"]),
            )
        expected = rec.get("expected")
        resolved_at = rec.get("resolved_at")
        return Notification(
            kind=kind, incident_id=rec["incident_id"], stream=rec["stream"],
            detector=rec["detector"], severity=rec["severity"], ts=float(rec["ts"]),
            opened_at=float(rec["opened_at"]), score=float(rec["score"]),
            peak_score=float(rec["peak_score"]), threshold=float(rec["threshold"]),
            count=int(rec["count"]), value=rec.get("value"),
            expected=parse_expected(expected),
            contributions=tuple((str(k), float(v)) for k, v in (rec.get("contributions") or {}).items()),
            tags=dict(rec.get("tags") or {}), resolved_at=resolved_at,
            dashboard_url=dashboard_link(self.dashboard_url, self.dashboard_uid, rec["stream"],
                                         float(rec["opened_at"]), resolved_at),
            explore_url=explore_link(self.explore_url, rec["stream"], float(rec["opened_at"]),
                                     rec["incident_id"]),
        )
