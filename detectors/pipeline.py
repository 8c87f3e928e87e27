"""A stream's pipeline: detector -> calibration to [0, 1] -> threshold -> severity."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from detectors.protocol import Detector, Features, Verdict
from detectors.registry import create


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """What every stream's pipeline is built from (the default rule)."""

    detector: str = "zscore"
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    threshold: float = 0.999
    warmup: int = 30
    # Lower bounds of the severity bands on the calibrated score (|z| about 5.3, 4.4, 3.3).
    bands: tuple[tuple[str, float], ...] = (
        ("critical", 0.9999999),
        ("error", 0.99999),
        ("warning", 0.999),
        ("info", 0.0),
    )


def gaussian_tail(z: float) -> float:
    """Map a |z|-like raw score to [0, 1]: the two-sided normal probability mass within z."""
    if not math.isfinite(z):
        return 1.0
    return math.erf(abs(z) / math.sqrt(2.0))


class StreamPipeline:
    """Scores then learns each event, so a score only uses the stream's past."""

    __slots__ = ("config", "detector", "version", "seen")

    def __init__(self, config: PipelineConfig, detector: Detector | None = None) -> None:
        self.config = config
        self.detector = detector or create(
            config.detector, **{"warmup": config.warmup, **dict(config.params)}
        )
        self.version = 1
        self.seen = 0

    def severity(self, score: float, is_anomaly: bool) -> str:
        if not is_anomaly:
            return "none"
        for name, low in self.config.bands:
            if score >= low:
                return name
        return "info"

    def process(self, x: Features) -> Verdict:
        det = self.detector
        warming = det.warming_up
        raw = det.score_one(x)
        det.learn_one(x)
        self.seen += 1
        score = 0.0 if warming else gaussian_tail(raw)
        threshold = self.config.threshold
        is_anomaly = (not warming) and score >= threshold
        contributions = getattr(det, "last_contributions", None) if len(x) > 1 else None
        return Verdict(
            score=score,
            threshold=threshold,
            is_anomaly=is_anomaly,
            severity=self.severity(score, is_anomaly),
            warming_up=warming,
            detector=det.name,
            version=self.version,
            contributions=dict(contributions) if contributions and is_anomaly else None,
        )
