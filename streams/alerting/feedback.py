"""Feedback from people: ``false_positive``, ``true_positive``, ``ack`` (and ``silence``).

A feedback record on ``pynomaly.feedback`` is a JSON object::

    {"kind": "false_positive", "incident_id": "inc-...", "ts": 1790000000, "by": "alice"}

``false_positive`` resolves the incident if still open and keeps that stream+detector's
new incidents quiet for ``false_positive_suppress_s`` of event time; ``true_positive``
lifts such a suppression; ``ack`` acknowledges (PagerDuty stops escalating);
``silence`` adds a silence (fields as in :class:`~streams.alerting.silences.Silence`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from streams.alerting.records import InvalidRecord

KINDS = ("false_positive", "true_positive", "ack", "silence")


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


def parse_feedback(doc: Any) -> Feedback:
    """A feedback JSON object -> Feedback, or InvalidRecord naming the problem."""
    if not isinstance(doc, dict):
        raise InvalidRecord("not_object", "feedback must be a JSON object")
    kind = doc.get("kind")
    if kind not in KINDS:
        raise InvalidRecord("bad_field", f"'kind' must be one of {', '.join(KINDS)}")
    ts = doc.get("ts")
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
        raise InvalidRecord("bad_field", "'ts' must be Unix seconds")
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
