"""The incident engine: scored records and feedback in, alert records (transitions) out.

Pure and deterministic: the same input records in the same order produce the same alert
records, ids included. Event time drives everything; see :mod:`lifecycle` for when
incidents open and resolve, and docs/alerting.md for the record schema.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from typing import Any

from streams.alerting.feedback import Feedback, Strictness, Suppressions
from streams.alerting.grouping import Grouper
from streams.alerting.lifecycle import Incident, IncidentTracker, Timings, Transition
from streams.alerting.records import Observation, parse_expected
from streams.alerting.silences import Silence, SilenceSet

TICK_S = 1.0  # event-time grain of watermark sweeps
KNOWN_INCIDENTS = 10_000  # remembered after resolve, so late feedback still finds its stream


class AlertEngine:
    def __init__(self, timings: Timings, grouper: Grouper | None = None,
                 silences: SilenceSet | None = None, false_positive_suppress_s: float = 3600.0,
                 strictness: Strictness | None = None) -> None:
        self.timings = timings
        self.tracker = IncidentTracker(timings)
        self.grouper = grouper or Grouper()
        self.silences = silences or SilenceSet()
        self.suppressions = Suppressions(false_positive_suppress_s)
        self.strictness = strictness or Strictness(86400.0)
        self.known: collections.OrderedDict[str, tuple[str, str]] = collections.OrderedDict()
        self.max_ts: dict[int, float] = {}  # per source partition
        self.watermarks: dict[int, float] = {}

    def observe(self, obs: Observation, partition: int = 0) -> list[dict[str, Any]]:
        """Feed one scored record from source ``partition``; returns the alert records it caused."""
        if obs.is_anomaly and not self.strictness.passes(obs.stream, obs.detector, obs.score,
                                                         obs.threshold, obs.ts):
            # below the stricter threshold that false-positive feedback set: calm for incidents
            obs = dataclasses.replace(obs, is_anomaly=False)
        out = self._emit(self.tracker.observe(obs, partition))
        if obs.ts > self.max_ts.get(partition, -math.inf):
            self.max_ts[partition] = obs.ts
            out += self.tick(obs.ts - self.timings.lateness_s, partition)
        return out

    def tick(self, watermark: float, partition: int = 0, reason: str | None = None) -> list[dict[str, Any]]:
        """Advance ``partition``'s event-time watermark: resolves its quiet incidents, announces groups."""
        # Sweeping every run on each new event time would cost O(runs) per record; a
        # one-second grain is plenty (resolved_at does not depend on when the sweep ran).
        if watermark < self.watermarks.get(partition, -math.inf) + TICK_S:
            return []
        self.watermarks[partition] = watermark
        out = self._emit(self.tracker.advance(watermark, partition), reason=reason)
        # Groups span partitions: a window closes when any partition's time passes its end
        # (a late joiner then starts the next group). Pruning waits for the slowest one.
        out += self.grouper.advance(max(self.watermarks.values()))
        low = min(self.watermarks.values())
        self.silences.prune(low)
        self.suppressions.prune(low)
        self.strictness.prune(low)
        self.tracker.prune(low)
        return out

    def idle(self, partition: int) -> list[dict[str, Any]]:
        """Nothing arrived on ``partition`` for the idle period (wall-clock time): its event
        time cannot advance, so move its watermark past every run's quiet period and group
        window. Its incidents resolve (reason ``idle``) at last anomaly + ``quiet_s``, as if
        calm records had followed; a record that still arrives later opens a new incident.
        """
        runs = [r for r in self.tracker.runs.values() if r.partition == partition]
        if not runs and all(g.announced for g in self.grouper.groups.values()):
            return []
        last = max([self.max_ts.get(partition, -math.inf), *(r.last_anomaly_ts for r in runs)])
        if not math.isfinite(last):
            return []
        watermark = last + self.timings.quiet_s + self.grouper.window_s
        return self.tick(watermark, partition, reason="idle")

    def drop_partitions(self, partitions: set[int]) -> None:
        """Partitions moved to another worker: their event time no longer concerns us."""
        for p in partitions:
            self.max_ts.pop(p, None)
            self.watermarks.pop(p, None)

    def feedback(self, fb: Feedback) -> list[dict[str, Any]]:
        """Apply one feedback record; returns the alert records it caused."""
        if fb.kind == "silence":
            silence = Silence.from_dict(fb.silence or {}, "silence feedback")
            self.silences.add(silence)
            return [{"type": "silence", "action": "created", "via": "feedback", "silence_id": silence.id,
                     "ts": fb.ts, "by": fb.by, **silence_doc(silence)}]
        key = self.known.get(fb.incident_id or "")
        if key is None and fb.stream:
            key = (fb.stream, fb.detector or "unknown")
        if key is None:
            return []  # unknown incident and no stream named: nothing to act on
        inc = self.tracker.find(fb.incident_id or "")
        audit = {"type": "incident", "action": "feedback", "incident_id": fb.incident_id,
                 "stream": key[0], "detector": key[1], "ts": fb.ts, "feedback": fb.kind,
                 "by": fb.by, "comment": fb.comment}
        out: list[dict[str, Any]] = [audit]
        if fb.kind == "false_positive":
            self.suppressions.suppress(key[0], key[1], fb.ts)
            audit["strict_steps"] = self.strictness.tighten(key[0], key[1], fb.ts)
            if inc is not None and inc.is_open:
                out += self._emit(self.tracker.resolve_now(inc.id, fb.ts), reason="false_positive")
        elif fb.kind == "true_positive":
            self.suppressions.lift(key[0], key[1])
            self.strictness.lift(key[0], key[1])
        elif fb.kind == "ack" and inc is not None and inc.is_open and not inc.acknowledged:
            inc.acknowledged = True
            out.append(inc.record("acknowledged", fb.ts, by=fb.by))
        return out

    def add_silence(self, doc: dict[str, Any], silence_id: str, ts: float) -> dict[str, Any]:
        """Add a silence at run time (control API); returns its audit record."""
        silence = Silence.from_dict({**doc, "id": silence_id}, "silence")
        self.silences.add(silence)
        return {"type": "silence", "action": "created", "silence_id": silence_id, "ts": ts,
                **silence_doc(silence)}

    def delete_silence(self, silence_id: str, ts: float) -> dict[str, Any] | None:
        """Remove a run-time silence; its audit record, or None if no silence has that id."""
        silence = self.silences.remove(silence_id)
        if silence is None:
            return None
        return {"type": "silence", "action": "deleted", "silence_id": silence_id, "ts": ts,
                **silence_doc(silence)}

    def snapshot(self, stream: str) -> dict[str, Any]:
        """JSON-able state of one stream (its runs and cooldown marks), for checkpoints."""
        runs = {det: dataclasses.asdict(inc) for (s, det), inc in self.tracker.runs.items() if s == stream}
        last = {det: ts for (s, det), ts in self.tracker.last_resolved.items() if s == stream}
        return {"v": 1, "runs": runs, "last_resolved": last}

    def restore(self, stream: str, doc: dict[str, Any]) -> None:
        """Put back a stream's state from :meth:`snapshot` (after a restart or a rebalance)."""
        for det, d in doc.get("runs", {}).items():
            d = dict(d)
            d["expected"] = parse_expected(d.get("expected"))
            d["contributions"] = tuple((str(k), float(v)) for k, v in d.get("contributions") or ())
            inc = Incident(**d)
            self.tracker.runs[(stream, det)] = inc
            if inc.is_open:
                self._remember(inc)
                if inc.group_id is not None and not self.grouper.adopt(inc):
                    inc.group_id = None  # a state from before group windows were kept: alone now
        for det, ts in doc.get("last_resolved", {}).items():
            self.tracker.last_resolved[(stream, det)] = float(ts)

    def forget(self, streams: set[str]) -> None:
        """Drop the state of streams this worker no longer owns."""
        for key in [k for k in self.tracker.runs if k[0] in streams]:
            del self.tracker.runs[key]
        for key in [k for k in self.tracker.last_resolved if k[0] in streams]:
            del self.tracker.last_resolved[key]

    def open_incidents(self) -> list[Incident]:
        return [r for r in self.tracker.runs.values() if r.is_open]

    def _emit(self, transitions: list[Transition], reason: str | None = None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for action, inc in transitions:
            if action == "opened":
                self._classify(inc)
                self._remember(inc)
                out.append(inc.record("opened", inc.last_anomaly_ts))
            elif action == "updated":
                out.append(inc.record("updated", inc.last_anomaly_ts))
            else:
                extra = {"reason": reason or "quiet"}
                out.append(inc.record("resolved", inc.resolved_at or inc.last_anomaly_ts, **extra))
                out += self.grouper.on_resolve(inc)
        return out

    def _classify(self, inc: Incident) -> None:
        """Decide, once, whether a new incident is silenced, suppressed or grouped."""
        if self.silences.match(inc.stream, inc.tags, inc.opened_at) is not None:
            inc.suppressed = "silence"
        elif self.suppressions.active(inc.stream, inc.detector, inc.opened_at):
            inc.suppressed = "false_positive"
        elif self.tracker.in_cooldown(inc):
            inc.suppressed = "cooldown"
        else:
            inc.group_id = self.grouper.on_open(inc, inc.last_anomaly_ts)
            if inc.group_id is not None:
                inc.group_window = self.grouper.groups[inc.group_id].window_start

    def _remember(self, inc: Incident) -> None:
        self.known[inc.id] = (inc.stream, inc.detector)
        while len(self.known) > KNOWN_INCIDENTS:
            self.known.popitem(last=False)


def silence_doc(s: Silence) -> dict[str, Any]:
    """JSON-able fields of a silence (an open end is null: JSON has no infinity)."""
    return {"id": s.id, "stream": s.stream, "tags": dict(s.tags), "starts_at": s.starts_at,
            "ends_at": s.ends_at if math.isfinite(s.ends_at) else None, "comment": s.comment}
