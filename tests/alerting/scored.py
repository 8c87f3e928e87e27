"""Build scored records (the ``pynomaly.scores`` / ``pynomaly.anomalies`` contract)."""

from __future__ import annotations

from typing import Any

T0 = 1_790_000_000.0


def scored(stream: str, ts: float, anomalous: bool, score: float | None = None,
           severity: str | None = None, value: float = 1.0, detector: str = "zscore",
           tags: dict[str, str] | None = None, offset: int = 0) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "stream": stream, "ts": ts, "value": value,
        "score": score if score is not None else (0.9995 if anomalous else 0.3),
        "threshold": 0.999, "is_anomaly": anomalous,
        "severity": severity or ("error" if anomalous else "none"),
        "warming_up": False, "detector": detector, "version": 1,
        "source": {"topic": "pynomaly.events", "partition": 0, "offset": offset},
    }
    if tags:
        doc["tags"] = tags
    return doc
