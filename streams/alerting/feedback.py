"""Feedback from people: ``false_positive``, ``true_positive``, ``ack`` (and ``silence``).

A feedback record on ``pynomaly.feedback`` is a JSON object::

    {"kind": "false_positive", "incident_id": "inc-...", "ts": 1790000000, "by": "alice"}

``false_positive`` resolves the incident if still open and keeps that stream+detector's
new incidents quiet for ``false_positive_suppress_s`` of event time and, for
``false_positive_strict_s``, makes its threshold stricter (:class:`Strictness`);
``true_positive`` lifts both; ``ack`` acknowledges (PagerDuty stops escalating);
``silence`` adds a silence (fields as in :class:`~streams.alerting.silences.Silence`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from streams.alerting.records import InvalidRecord
from streams.alerting.silences import silences_everything

KINDS = ("false_positive", "true_positive", "ack", "silence")
# Feedback is written by people and tools, on the wall clock: a time further ahead is a
# mistake or an attack (a false positive at ts 1e18 would suppress a stream until then).
MAX_AHEAD_S = 86_400.0
MAX_SILENCE_S = 7 * 86_400.0


@dataclasses.dataclass(frozen=True)
class Feedback:
    kind: str
    ts: float
    incident_id: str | None = None
    stream: str | None = None
    detector: str | None = None
    by: str = ""
    comment: str = ""
    silence: dict[str, Any] | None = None


def parse_feedback(doc: Any, now: float | None = None, max_silence_s: float = MAX_SILENCE_S) -> Feedback:
    """A feedback JSON object -> Feedback, or InvalidRecord naming the problem.

    With ``now`` (the wall clock), ``ts`` may be at most a day ahead of it. A silence must
    not match everything and must end within ``max_silence_s`` of its start.
    """
    if not isinstance(doc, dict):
        raise InvalidRecord("not_object", "feedback must be a JSON object")
    kind = doc.get("kind")
    if kind not in KINDS:
        raise InvalidRecord("bad_field", f"'kind' must be one of {', '.join(KINDS)}")
    ts = doc.get("ts")
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
        raise InvalidRecord("bad_field", "'ts' must be Unix seconds")
    if now is not None and ts > now + MAX_AHEAD_S:
        raise InvalidRecord("bad_field", f"'ts' is more than {MAX_AHEAD_S:.0f} s ahead of the clock; "
                            "send the time the feedback was given, in Unix seconds")
    if kind == "silence":
        _check_silence(doc, float(ts), max_silence_s)
    inc = doc.get("incident_id")
    if kind != "silence" and not (isinstance(inc, str) and inc):
        raise InvalidRecord("bad_field", f"'{kind}' feedback needs an 'incident_id'")
    return Feedback(
        kind=kind, ts=float(ts), incident_id=inc if isinstance(inc, str) else None,
        stream=doc.get("stream") if isinstance(doc.get("stream"), str) else None,
        detector=doc.get("detector") if isinstance(doc.get("detector"), str) else None,
        by=str(doc.get("by", ""))[:200], comment=str(doc.get("comment", ""))[:1000],
        silence=doc if kind == "silence" else None,
    )


def _check_silence(doc: dict[str, Any], ts: float, max_silence_s: float) -> None:
    stream, tags = doc.get("stream", "*"), doc.get("tags") or {}
    if not isinstance(stream, str) or not isinstance(tags, dict):
        raise InvalidRecord("bad_field", "a silence needs 'stream' (a glob) and/or 'tags' (an object)")
    if silences_everything(stream, tags):
        raise InvalidRecord("bad_field", "a silence of everything is refused: give 'stream' or 'tags' "
                            "a glob with a literal part, such as 'payments.*'")
    ends_at, starts_at = doc.get("ends_at"), doc.get("starts_at", ts)
    for name, value in (("ends_at", ends_at), ("starts_at", starts_at)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise InvalidRecord("bad_field", f"a silence needs a finite '{name}' (Unix seconds)")
    if ends_at - max(ts, starts_at) > max_silence_s:
        raise InvalidRecord("bad_field", f"a silence may last at most {max_silence_s:.0f} s; renew it "
                            "when it ends")


class Suppressions:
    """(stream, detector) -> event time until which new incidents stay quiet."""

    def __init__(self, period_s: float) -> None:
        self.period_s = period_s
        self.until: dict[tuple[str, str], float] = {}

    def suppress(self, stream: str, detector: str, ts: float) -> None:
        self.until[(stream, detector)] = ts + self.period_s

    def lift(self, stream: str, detector: str) -> None:
        self.until.pop((stream, detector), None)

    def active(self, stream: str, detector: str, ts: float) -> bool:
        return self.until.get((stream, detector), -math.inf) > ts

    def prune(self, ts: float) -> None:
        self.until = {k: v for k, v in self.until.items() if v > ts}


class Strictness:
    """(stream, detector) -> a stricter threshold for a while after false-positive feedback.

    Scores are calibrated to [0, 1] and an anomaly is a score at or above the record's
    threshold, so ``1 - threshold`` is the tail probability the stream accepts. Each
    false positive multiplies that tail by ``factor`` (0.1: anomalies must be ten times
    rarer), at most ``max_steps`` times, for ``period_s`` of event time from the latest
    one. Bounded both ways, so a stream that people keep marking wrong is never muted
    for good: a strong enough anomaly still opens an incident. ``true_positive`` lifts it.

    >>> s = Strictness(period_s=100, factor=0.1, max_steps=2)
    >>> s.tighten("a", "zscore", ts=0)
    1
    >>> round(s.required("a", "zscore", 0.999, ts=50), 6)
    0.9999
    >>> s.required("a", "zscore", 0.999, ts=150)
    0.999
    """

    def __init__(self, period_s: float, factor: float = 0.1, max_steps: int = 3) -> None:
        self.period_s, self.factor, self.max_steps = period_s, factor, max_steps
        self.steps: dict[tuple[str, str], tuple[int, float]] = {}  # -> (steps, until)

    def tighten(self, stream: str, detector: str, ts: float) -> int:
        """Record one false positive at event time ``ts``; returns the steps now in force."""
        steps, until = self.steps.get((stream, detector), (0, -math.inf))
        steps = min(self.max_steps, (steps if until > ts else 0) + 1)
        self.steps[(stream, detector)] = (steps, ts + self.period_s)
        return steps

    def lift(self, stream: str, detector: str) -> None:
        self.steps.pop((stream, detector), None)

    def required(self, stream: str, detector: str, threshold: float, ts: float) -> float:
        """The score an anomaly needs at ``ts`` (``threshold`` when nothing is in force)."""
        steps, until = self.steps.get((stream, detector), (0, -math.inf))
        if steps == 0 or until <= ts or not 0.0 <= threshold < 1.0:
            return threshold  # uncalibrated thresholds (outside [0, 1)) are left alone
        return 1.0 - (1.0 - threshold) * self.factor ** steps

    def passes(self, stream: str, detector: str, score: float, threshold: float, ts: float) -> bool:
        return score >= self.required(stream, detector, threshold, ts)

    def prune(self, ts: float) -> None:
        self.steps = {k: v for k, v in self.steps.items() if v[1] > ts}
