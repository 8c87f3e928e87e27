"""Parsing scored records into observations; alert records (the ``pynomaly.alerts`` schema).

Alert records are plain JSON objects so any consumer can read the audit log:

* ``{"type": "incident", "action": "opened|updated|resolved|acknowledged|feedback", ...}``
* ``{"type": "group", "action": "opened|resolved", "group_id", "members": [...], ...}``

See docs/alerting.md for every field.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from typing import Any

SEVERITY_RANK = {"none": -1, "info": 0, "warning": 1, "error": 2, "critical": 3}


# The band a value was expected in: (low, high) for a univariate stream, or per feature.
Expected = tuple[float, float] | dict[str, tuple[float, float]]


@dataclasses.dataclass(frozen=True, slots=True)
class Observation:
    """One scored record, as the incident logic needs it."""

    stream: str
    detector: str
    ts: float
    is_anomaly: bool
    score: float
    threshold: float
    severity: str
    warming_up: bool = False
    value: float | dict[str, float] | None = None
    expected: Expected | None = None
    contributions: tuple[tuple[str, float], ...] = ()
    tags: dict[str, str] = dataclasses.field(default_factory=dict)


class InvalidRecord(ValueError):
    """A scored or feedback record that cannot be used; ``reason`` is machine-readable."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _num(doc: dict[str, Any], key: str, default: float | None = None) -> float:
    raw = doc.get(key, default)
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise InvalidRecord("bad_field", f"'{key}' must be a finite number, got {type(raw).__name__}")
    return float(raw)


def parse_scored(doc: Any) -> Observation:
    """A scored record (streams/codec.py ``scored_dict``) -> Observation, or InvalidRecord."""
    if not isinstance(doc, dict):
        raise InvalidRecord("not_object", "a scored record must be a JSON object")
    stream, detector = doc.get("stream"), doc.get("detector", "unknown")
    if not isinstance(stream, str) or not stream:
        raise InvalidRecord("bad_field", "'stream' must be a non-empty string")
    if not isinstance(detector, str) or not detector:
        raise InvalidRecord("bad_field", "'detector' must be a non-empty string")
    is_anomaly = doc.get("is_anomaly")
    if not isinstance(is_anomaly, bool):
        raise InvalidRecord("bad_field", "'is_anomaly' must be true or false")
    severity = doc.get("severity", "warning")
    if severity not in SEVERITY_RANK:
        raise InvalidRecord("bad_field", f"'severity' must be one of {', '.join(SEVERITY_RANK)}")
    value: float | dict[str, float] | None = None
    if isinstance(doc.get("values"), dict):
        value = {str(k): float(v) for k, v in doc["values"].items()
                 if isinstance(v, int | float) and not isinstance(v, bool)}
    elif "value" in doc:
        value = _num(doc, "value")
    tags = doc.get("tags") or {}
    if not isinstance(tags, dict):
        raise InvalidRecord("bad_field", "'tags' must be an object of strings")
    contribs = doc.get("contributions") or {}
    contributions = tuple(
        (str(k), float(v)) for k, v in contribs.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    ) if isinstance(contribs, dict) else ()
    return Observation(
        stream=stream, detector=detector, ts=_num(doc, "ts"), is_anomaly=is_anomaly,
        score=_num(doc, "score"), threshold=_num(doc, "threshold", 1.0), severity=severity,
        warming_up=bool(doc.get("warming_up", False)), value=value,
        expected=parse_expected(doc.get("expected")), contributions=contributions,
        tags={str(k): str(v) for k, v in tags.items()},
    )


def _band(raw: Any) -> tuple[float, float] | None:
    try:
        if isinstance(raw, dict):
            low, high = float(raw["low"]), float(raw["high"])
        elif isinstance(raw, list | tuple) and len(raw) == 2:
            low, high = float(raw[0]), float(raw[1])
        else:
            return None
    except (KeyError, TypeError, ValueError):
        return None
    return (low, high) if math.isfinite(low) and math.isfinite(high) and low <= high else None


def parse_expected(raw: Any) -> Expected | None:
    """The optional normal range of a scored or alert record, or None when absent or bad.

    Univariate ``{"low": L, "high": H}`` (or ``[L, H]``); multivariate, per feature
    ``{"cpu": {"low": L, "high": H}, ...}`` (or ``{"cpu": [L, H]}``).

    >>> parse_expected({"low": 1, "high": 2}), parse_expected({"cpu": [1, 2], "mem": "x"})
    ((1.0, 2.0), {'cpu': (1.0, 2.0)})
    """
    band = _band(raw)
    if band is not None or not isinstance(raw, dict):
        return band
    bands = {str(k): b for k, v in raw.items() if (b := _band(v)) is not None}
    return bands or None


def expected_json(expected: Expected) -> list[float] | dict[str, list[float]]:
    """An expected range as the alert record writes it (``[L, H]`` or per feature)."""
    if isinstance(expected, dict):
        return {k: [lo, hi] for k, (lo, hi) in expected.items()}
    return [expected[0], expected[1]]


def derive_id(prefix: str, *parts: object) -> str:
    """Stable id from its parts: a replay of the same input yields the same id.

    >>> derive_id("inc", "cpu", "zscore", 1790000000.0)
    'inc-2168fe2e2b3b12db'
    """
    text = "\x1f".join(repr(p) for p in parts)
    return f"{prefix}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def max_severity(a: str, b: str) -> str:
    return a if SEVERITY_RANK.get(a, 0) >= SEVERITY_RANK.get(b, 0) else b
