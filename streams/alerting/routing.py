"""Routing: which sinks hear about an incident, by stream glob, tags and severity.

Rules are tried in order; the first that matches decides (unless it sets
``continue = true``, then later matches add their sinks too). No match: the default
route (``default_sinks``; empty means every enabled sink).
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from streams.alerting.records import SEVERITY_RANK
from streams.errors import SettingsError


@dataclasses.dataclass(frozen=True)
class Route:
    sinks: tuple[str, ...]
    streams: tuple[str, ...] = ("*",)
    tags: Mapping[str, str] = dataclasses.field(default_factory=dict)
    min_severity: str = "info"
    continue_: bool = False
    name: str = ""

    def matches(self, stream: str, tags: Mapping[str, str], severity: str) -> bool:
        if SEVERITY_RANK.get(severity, 0) < SEVERITY_RANK[self.min_severity]:
            return False
        if not any(fnmatch.fnmatchcase(stream, g) for g in self.streams):
            return False
        return all(k in tags and fnmatch.fnmatchcase(tags[k], v) for k, v in self.tags.items())

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], index: int, known_sinks: Iterable[str]) -> Route:
        where = f"[[alerting.routes]] #{index + 1}"
        sinks = doc.get("sinks")
        if not isinstance(sinks, list) or not all(isinstance(s, str) for s in sinks):
            raise SettingsError(f"{where}: 'sinks' must be a list of sink names")
        unknown = sorted(set(sinks) - set(known_sinks))
        if unknown:
            raise SettingsError(f"{where}: unknown sink(s) {', '.join(unknown)}; "
                                f"known: {', '.join(sorted(known_sinks))}")
        sev = str(doc.get("min_severity", "info"))
        if sev not in SEVERITY_RANK or sev == "none":
            raise SettingsError(f"{where}: min_severity must be info, warning, error or critical")
        streams = doc.get("streams", ["*"])
        if isinstance(streams, str):
            streams = [streams]
        return cls(sinks=tuple(sinks), streams=tuple(str(s) for s in streams),
                   tags={str(k): str(v) for k, v in dict(doc.get("tags", {})).items()},
                   min_severity=sev, continue_=bool(doc.get("continue", False)),
                   name=str(doc.get("name", f"route{index + 1}")))


class Router:
    def __init__(self, routes: Sequence[Route], default_sinks: Sequence[str],
                 enabled: Iterable[str]) -> None:
        self.routes = list(routes)
        self.enabled = set(enabled)
        self.default = [s for s in (default_sinks or sorted(self.enabled)) if s in self.enabled]

    def sinks_for(self, stream: str, tags: Mapping[str, str], severity: str) -> list[str]:
        chosen: list[str] = []
        for route in self.routes:
            if route.matches(stream, tags, severity):
                chosen += [s for s in route.sinks if s in self.enabled and s not in chosen]
                if not route.continue_:
                    return chosen
        return chosen if chosen else list(self.default)
