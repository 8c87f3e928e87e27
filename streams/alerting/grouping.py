"""Grouping: when many streams open incidents at once, send one summary, not a page each.

The first ``max_individual`` incidents opened within ``window_s`` of event time are
notified one by one. Beyond that a group starts: every incident opening in the next
``window_s`` joins it and is recorded but not notified on its own. When the watermark
passes the group window's end, one ``group opened`` record lists the top ``top_n``
members by peak score; when the last member resolves, one ``group resolved`` record
follows. Group ids derive from the window start, so replays reproduce them.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Any

from streams.alerting.lifecycle import Incident
from streams.alerting.records import derive_id, max_severity


@dataclasses.dataclass
class Group:
    id: str
    window_start: float
    window_end: float
    members: dict[str, Incident] = dataclasses.field(default_factory=dict)
    open_members: set[str] = dataclasses.field(default_factory=set)
    announced: bool = False
    last_resolved_at: float = 0.0

    def record(self, action: str, ts: float, top_n: int) -> dict[str, Any]:
        ranked = sorted(self.members.values(), key=lambda m: (-m.peak_score, m.stream))
        severity = "info"
        for m in ranked:
            severity = max_severity(severity, m.severity)
        return {
            "type": "group", "action": action, "group_id": self.id, "ts": ts,
            "window_start": self.window_start, "window_end": self.window_end,
            "severity": severity, "member_count": len(self.members),
            "streams": sorted({m.stream for m in ranked}),
            # every member's routing keys, so routes see the whole group, not just the top N
            "routing": [[m.stream, m.severity, m.tags] for m in ranked],
            "members": [{"incident_id": m.id, "stream": m.stream, "detector": m.detector,
                         "severity": m.severity, "peak_score": m.peak_score,
                         "opened_at": m.opened_at, "tags": m.tags} for m in ranked[:top_n]],
        }


class Grouper:
    def __init__(self, window_s: float = 120.0, max_individual: int = 5, top_n: int = 10) -> None:
        self.window_s, self.max_individual, self.top_n = window_s, max_individual, top_n
        self.recent: collections.deque[float] = collections.deque()  # recent openings
        self.current: Group | None = None  # the group still accepting members
        self.groups: dict[str, Group] = {}  # announced or filling, until fully resolved

    def on_open(self, inc: Incident, ts: float) -> str | None:
        """Decide whether ``inc`` (opened at event time ``ts``) joins a group; returns its id."""
        while self.recent and self.recent[0] <= ts - self.window_s:
            self.recent.popleft()
        if self.current is not None and ts >= self.current.window_end:
            self.current = None
        if self.current is None and len(self.recent) >= self.max_individual:
            gid = derive_id("grp", ts)
            self.current = Group(gid, ts, ts + self.window_s)
            self.groups[gid] = self.current
        self.recent.append(ts)  # grouped openings count too: a long storm stays grouped
        if self.current is None:
            return None
        self.current.members[inc.id] = inc
        self.current.open_members.add(inc.id)
        return self.current.id

    def adopt(self, inc: Incident) -> bool:
        """Put a restored open member back into its group (rebuilt, not yet announced, if
        the restart forgot it: its announcement may then come twice, with the same id)."""
        if inc.group_id is None or inc.group_window is None:
            return False
        group = self.groups.get(inc.group_id)
        if group is None:
            start = inc.group_window
            group = self.groups[inc.group_id] = Group(inc.group_id, start, start + self.window_s)
        group.members[inc.id] = inc
        group.open_members.add(inc.id)
        return True

    def on_resolve(self, inc: Incident) -> list[dict[str, Any]]:
        group = self.groups.get(inc.group_id or "")
        if group is None:
            return []
        group.open_members.discard(inc.id)
        group.last_resolved_at = max(group.last_resolved_at, inc.resolved_at or 0.0)
        return self._maybe_finish(group)

    def advance(self, watermark: float) -> list[dict[str, Any]]:
        """Announce groups whose window closed; finish those whose members all resolved."""
        out: list[dict[str, Any]] = []
        if self.current is not None and watermark >= self.current.window_end:
            self.current = None
        for group in sorted(self.groups.values(), key=lambda g: g.window_start):
            if not group.announced and watermark >= group.window_end:
                group.announced = True
                out.append(group.record("opened", group.window_end, self.top_n))
                out += self._maybe_finish(group)
        return out

    def _maybe_finish(self, group: Group) -> list[dict[str, Any]]:
        if not group.announced or group.open_members or group is self.current:
            return []
        del self.groups[group.id]
        ts = max(group.last_resolved_at, group.window_end)
        return [group.record("resolved", ts, self.top_n)]
