"""The vendor-neutral notification every sink renders: one incident transition or a group."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

KINDS = ("trigger", "update", "resolve", "acknowledge", "group_trigger", "group_resolve")
SEVERITY_ORDER = {"info": 0, "warning": 1, "error": 2, "critical": 3}


@dataclasses.dataclass(frozen=True, slots=True)
class GroupMember:
    """One incident listed in a grouped notification."""

    incident_id: str
    stream: str
    severity: str
    peak_score: float
    opened_at: float


@dataclasses.dataclass(frozen=True, slots=True)
class Notification:
    """Everything a person needs to judge an alert, independent of the tool that shows it.

    Times are Unix seconds of event time. ``value`` is the last observed value (a number,
    or a mapping of feature -> number for multivariate streams). ``expected`` is the
    (low, high) range the detector considered normal, when the record said so.
    """

    kind: str  # one of KINDS
    incident_id: str  # also PagerDuty's dedup_key
    stream: str
    detector: str
    severity: str
    ts: float
    opened_at: float
    score: float
    peak_score: float
    threshold: float
    count: int
    value: float | dict[str, float] | None = None
    # (low, high), or per feature for a multivariate stream
    expected: tuple[float, float] | dict[str, tuple[float, float]] | None = None
    contributions: tuple[tuple[str, float], ...] = ()
    tags: dict[str, str] = dataclasses.field(default_factory=dict)
    dashboard_url: str | None = None
    explore_url: str | None = None  # the stream explorer, focused on the stream around the incident
    resolved_at: float | None = None
    members: tuple[GroupMember, ...] = ()
    member_count: int = 0  # total incidents in a group (members lists only the top N)

    @property
    def is_group(self) -> bool:
        return self.kind.startswith("group_")

    @property
    def is_resolve(self) -> bool:
        return self.kind in ("resolve", "group_resolve")

    @property
    def title(self) -> str:
        """One line, plain text: what happened where."""
        sev = self.severity.upper()
        if self.kind == "group_trigger":
            return f"[{sev}] {self.member_count} streams anomalous (group {self.incident_id})"
        if self.kind == "group_resolve":
            return f"[RESOLVED] {self.member_count} grouped incidents resolved ({self.incident_id})"
        if self.kind == "resolve":
            return f"[RESOLVED] {self.stream}: anomaly ended ({self.detector})"
        if self.kind == "acknowledge":
            return f"[ACK] {self.stream}: incident acknowledged ({self.detector})"
        verb = "still anomalous" if self.kind == "update" else "anomaly"
        return f"[{sev}] {self.stream}: {verb}, score {score_text(self.peak_score)} ({self.detector})"

    def value_text(self) -> str:
        """The observed value against the expected range, as short plain text."""
        if self.value is None:
            return "n/a"
        bands = self.expected
        if isinstance(self.value, dict):
            # The features that moved most first, each with its own expected range.
            order = [k for k, _ in self.top_contributions(len(self.contributions))]
            names = [k for k in order if k in self.value] + [k for k in self.value if k not in order]
            shown = []
            for k in names[:5]:
                band = bands.get(k) if isinstance(bands, dict) else None
                shown.append(f"{k}={_num(self.value[k])}" + (
                    f" (expected {_num(band[0])} .. {_num(band[1])})" if band else ""))
            more = f" (+{len(self.value) - 5} more)" if len(self.value) > 5 else ""
            return ", ".join(shown) + more
        text = _num(self.value)
        if isinstance(bands, tuple):
            text += f" (expected {_num(bands[0])} .. {_num(bands[1])})"
        return text

    def top_contributions(self, n: int = 3) -> list[tuple[str, float]]:
        return sorted(self.contributions, key=lambda kv: -kv[1])[:n]

    def summary_fields(self) -> dict[str, str]:
        """Label -> text pairs shared by every rendering (Slack fields, card facts...)."""
        if self.is_group:
            fields = {
                "Incidents": str(self.member_count),
                "Severity": self.severity,
                "Window start": iso(self.opened_at),
            }
            if self.resolved_at is not None:
                fields["Resolved"] = iso(self.resolved_at)
            return fields
        fields = {
            "Stream": self.stream,
            "Severity": self.severity,
            "Value": self.value_text(),
            "Score": f"{score_text(self.score)} (peak {score_text(self.peak_score)}, "
                     f"threshold {score_text(self.threshold)})",
            "Detector": self.detector,
            "Anomalous events": str(self.count),
            "Opened": iso(self.opened_at),
            "Event time": iso(self.ts),
        }
        if self.resolved_at is not None:
            fields["Resolved"] = iso(self.resolved_at)
        top = self.top_contributions()
        if top:
            fields["Top features"] = ", ".join(f"{k} {v:.0%}" for k, v in top)
        fields["Incident"] = self.incident_id
        return fields

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["title"] = self.title
        return d


def iso(ts: float) -> str:
    """Unix seconds -> RFC 3339 UTC with milliseconds (PagerDuty and people both read it)."""
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


def score_text(score: float) -> str:
    """Scores live near 1 (0.999 vs 0.99999 matters), so show significant digits, not 3 places."""
    return f"{score:.6g}"


def _num(v: float) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def truncate(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` characters, marking the cut with an ellipsis."""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"
