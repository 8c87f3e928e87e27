"""Silences: operator-declared windows in which matching incidents are recorded, not sent.

A silence matches a stream by glob (``fnmatch``: ``payments.*``) and, optionally, tags
(every listed tag must match its glob). ``starts_at``/``ends_at`` are Unix seconds compared
with the incident's event time, which keeps replays deterministic; in live operation
event time is close to wall-clock time, so "silence for two hours from now" works.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
from collections.abc import Iterable, Mapping
from typing import Any

from streams.errors import SettingsError

_WILDCARDS = re.compile(r"\[!?\]?[^\]]*\]|[*?]")


def matches_everything(glob: str) -> bool:
    """True for a glob without a literal character (``*``, ``**``, ``?*``, ``[a-z]*``...):
    it matches every stream (or tag value) that exists, or nearly.

    >>> [matches_everything(g) for g in ("*", "**", "?*", "[!x]*", "payments.*")]
    [True, True, True, True, False]
    """
    return not _WILDCARDS.sub("", glob)


def silences_everything(stream: str, tags: Mapping[str, str]) -> bool:
    """A silence whose stream glob and every tag glob match everything."""
    return matches_everything(stream) and all(matches_everything(str(g)) for g in tags.values())


@dataclasses.dataclass(frozen=True)
class Silence:
    stream: str = "*"
    tags: Mapping[str, str] = dataclasses.field(default_factory=dict)
    starts_at: float = 0.0
    ends_at: float = float("inf")
    comment: str = ""
    id: str = ""  # set for silences created at run time (control API), so they can be deleted

    def matches(self, stream: str, tags: Mapping[str, str], ts: float) -> bool:
        if not self.starts_at <= ts < self.ends_at:
            return False
        if not fnmatch.fnmatchcase(stream, self.stream):
            return False
        return all(k in tags and fnmatch.fnmatchcase(tags[k], v) for k, v in self.tags.items())

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], where: str = "silence") -> Silence:
        try:
            return cls(
                stream=str(doc.get("stream", "*")),
                tags={str(k): str(v) for k, v in dict(doc.get("tags", {})).items()},
                starts_at=float(doc.get("starts_at", 0.0)),
                ends_at=float(doc.get("ends_at", float("inf"))),
                comment=str(doc.get("comment", "")),
                id=str(doc.get("id", "")),
            )
        except (TypeError, ValueError) as exc:
            raise SettingsError(
                f"invalid {where}: {exc}; expected stream (glob), tags (table of globs), "
                "starts_at/ends_at (Unix seconds)"
            ) from None


class SilenceSet:
    """The active silences; expired ones are pruned as event time passes."""

    def __init__(self, silences: Iterable[Silence] = ()) -> None:
        self.silences = list(silences)

    def add(self, silence: Silence) -> None:
        self.silences.append(silence)

    def match(self, stream: str, tags: Mapping[str, str], ts: float) -> Silence | None:
        return next((s for s in self.silences if s.matches(stream, tags, ts)), None)

    def remove(self, silence_id: str) -> Silence | None:
        """Delete the silence with this id; returns it, or None if there is none."""
        for s in self.silences:
            if silence_id and s.id == silence_id:
                self.silences.remove(s)
                return s
        return None

    def prune(self, ts: float) -> None:
        self.silences = [s for s in self.silences if s.ends_at > ts]
