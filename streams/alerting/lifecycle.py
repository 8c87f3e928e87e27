"""Incident lifecycle per (stream, detector), driven only by event time.

A *run* is a sequence of anomalous records on one stream whose gaps are shorter than
``quiet_s``. A run opens an incident once it has lasted ``min_duration_s`` and holds
``min_count`` anomalies; the incident updates while the run lasts and resolves at
``last anomaly + quiet_s`` once that moment is proven past, either by a non-anomalous
scored record of the same stream at or after it, or by the event-time watermark (the
latest event time seen on the stream's partition, minus ``lateness_s``) passing it: a stream that
went silent resolves too. Watermarks are per source partition: records of one partition
arrive in order, but partitions are consumed at different paces (a backlog, a replay), so
one partition's event time must never resolve another partition's incidents. The id derives from stream, detector and the run's first
anomaly time, so replaying the same records yields the same ids.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from streams.alerting.records import (
    SEVERITY_RANK,
    Expected,
    Observation,
    derive_id,
    expected_json,
    max_severity,
)


@dataclasses.dataclass(frozen=True)
class Timings:
    min_duration_s: float = 0.0  # a run must last this long (event time) before it opens
    min_count: int = 1  # ...and hold this many anomalous records
    quiet_s: float = 300.0  # no anomaly for this long resolves (and splits runs)
    update_interval_s: float = 300.0  # at most one 'updated' record per incident per interval
    cooldown_s: float = 60.0  # new incidents this soon after a notified resolve stay quiet
    lateness_s: float = 60.0  # watermark = latest event time seen - lateness_s


@dataclasses.dataclass
class Incident:
    id: str
    stream: str
    detector: str
    opened_at: float  # first anomaly of the run
    last_anomaly_ts: float
    count: int
    peak_score: float
    score: float
    threshold: float
    severity: str
    value: Any = None
    expected: Expected | None = None
    contributions: tuple[tuple[str, float], ...] = ()
    tags: dict[str, str] = dataclasses.field(default_factory=dict)
    is_open: bool = False
    seq: int = 0  # transitions emitted so far: (id, seq) identifies a record
    last_update_ts: float = 0.0
    suppressed: str | None = None  # silence | cooldown | false_positive
    group_id: str | None = None
    group_window: float | None = None  # the group's window start: rebuilds the group after a restart
    resolved_at: float | None = None
    acknowledged: bool = False
    partition: int = 0  # source partition: whose watermark may resolve it

    def absorb(self, obs: Observation) -> None:
        self.count += 1
        self.peak_score = max(self.peak_score, obs.score)
        self.severity = max_severity(self.severity, obs.severity)
        if obs.ts >= self.last_anomaly_ts:  # late records count but do not replace the latest
            self.last_anomaly_ts = obs.ts
            self.score, self.threshold, self.value = obs.score, obs.threshold, obs.value
            self.expected = obs.expected or self.expected
            self.contributions = obs.contributions or self.contributions
            self.tags = obs.tags or self.tags

    def record(self, action: str, ts: float, **extra: Any) -> dict[str, Any]:
        """The alert record for this transition (see docs/alerting.md)."""
        self.seq += 1
        doc: dict[str, Any] = {
            "type": "incident", "action": action, "incident_id": self.id, "seq": self.seq,
            "stream": self.stream, "detector": self.detector, "ts": ts,
            "opened_at": self.opened_at, "severity": self.severity, "count": self.count,
            "score": self.score, "peak_score": self.peak_score, "threshold": self.threshold,
            "value": self.value, "tags": self.tags, "suppressed": self.suppressed,
            "group_id": self.group_id,
        }
        if self.expected is not None:
            doc["expected"] = expected_json(self.expected)
        if self.contributions:
            doc["contributions"] = dict(self.contributions)
        if self.resolved_at is not None:
            doc["resolved_at"] = self.resolved_at
        doc.update(extra)
        return doc


Transition = tuple[str, Incident]  # ("opened" | "updated" | "resolved", incident)


class IncidentTracker:
    """Open runs and incidents for all (stream, detector) keys this worker owns."""

    def __init__(self, timings: Timings) -> None:
        self.t = timings
        self.runs: dict[tuple[str, str], Incident] = {}  # pending or open
        self.last_resolved: dict[tuple[str, str], float] = {}

    def observe(self, obs: Observation, partition: int = 0) -> list[Transition]:
        key = (obs.stream, obs.detector)
        out: list[Transition] = []
        run = self.runs.get(key)
        if run is not None and obs.ts - run.last_anomaly_ts >= self.t.quiet_s:
            out += self._close(key, run)  # the old run ended before this record
            run = None
        if not obs.is_anomaly:
            return out
        if run is None:
            run = Incident(
                id=derive_id("inc", obs.stream, obs.detector, obs.ts), stream=obs.stream,
                detector=obs.detector, opened_at=obs.ts, last_anomaly_ts=obs.ts, count=0,
                peak_score=obs.score, score=obs.score, threshold=obs.threshold,
                severity=obs.severity if obs.severity != "none" else "warning", partition=partition,
            )
            self.runs[key] = run
        if obs.ts < run.opened_at:  # a late record older than the run start: count it only
            run.count += 1
            return out
        before = run.severity
        run.absorb(obs)
        if not run.is_open:
            if (run.last_anomaly_ts - run.opened_at >= self.t.min_duration_s
                    and run.count >= self.t.min_count):
                run.is_open = True
                run.last_update_ts = obs.ts
                out.append(("opened", run))
        elif (obs.ts - run.last_update_ts >= self.t.update_interval_s
              or SEVERITY_RANK[run.severity] > SEVERITY_RANK[before]):
            run.last_update_ts = obs.ts
            out.append(("updated", run))
        return out

    def advance(self, watermark: float, partition: int = 0) -> list[Transition]:
        """Resolve (or drop, if never opened) ``partition``'s runs quiet since before ``watermark``."""
        out: list[Transition] = []
        for key, run in list(self.runs.items()):
            if run.partition == partition and run.last_anomaly_ts + self.t.quiet_s <= watermark:
                out += self._close(key, run)
        return out

    def prune(self, low_watermark: float) -> None:
        """Forget cooldown marks older than the cooldown, as of the slowest partition."""
        horizon = low_watermark - self.t.cooldown_s
        for key, ts in list(self.last_resolved.items()):
            if ts < horizon:
                del self.last_resolved[key]

    def resolve_now(self, incident_id: str, ts: float) -> list[Transition]:
        """End an open incident early (a person marked it a false positive)."""
        for key, run in list(self.runs.items()):
            if run.id == incident_id and run.is_open:
                run.resolved_at = max(ts, run.last_anomaly_ts)
                del self.runs[key]
                self._note_resolved(key, run)
                return [("resolved", run)]
        return []

    def in_cooldown(self, run: Incident) -> bool:
        last = self.last_resolved.get((run.stream, run.detector))
        return last is not None and run.opened_at - last < self.t.cooldown_s

    def find(self, incident_id: str) -> Incident | None:
        return next((r for r in self.runs.values() if r.id == incident_id), None)

    def _close(self, key: tuple[str, str], run: Incident) -> list[Transition]:
        del self.runs[key]
        if not run.is_open:
            return []  # a run too short to open: nothing was ever said about it
        run.resolved_at = run.last_anomaly_ts + self.t.quiet_s
        self._note_resolved(key, run)
        return [("resolved", run)]

    def _note_resolved(self, key: tuple[str, str], run: Incident) -> None:
        # Cooldown counts from the last incident people heard about, so a stream that
        # keeps flapping is heard again once per cooldown instead of never.
        if run.suppressed is None and run.resolved_at is not None:
            self.last_resolved[key] = run.resolved_at
