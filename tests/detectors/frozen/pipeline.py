"""A stream's pipeline: detector -> calibration to [0, 1] -> threshold -> hysteresis/severity.

>>> p = StreamPipeline(PipelineConfig(detector="zscore", warmup=5, params={"alpha": 0.1}))
>>> verdicts = [p.process({"value": 1.0 + 0.01 * (i % 3)}) for i in range(30)]
>>> verdicts[0].warming_up, verdicts[-1].warming_up
(True, False)
>>> v = p.process({"value": 50.0})
>>> v.is_anomaly, v.anomaly_state, v.severity
(True, True, 'critical')
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from detectors.errors import DetectorError
from detectors.explain import explain
from detectors.protocol import Detector, Features, Verdict
from detectors.registry import create
from detectors.seasonality import SeasonalBaseline
from tests.detectors.frozen.calibration import gaussian_tail, make_calibrator
from tests.detectors.frozen.ensemble import RarityLikelihood
from tests.detectors.frozen.thresholds import Hysteresis, make_threshold

__all__ = ["PipelineConfig", "StreamPipeline", "gaussian_tail"]


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """What a stream's pipeline is built from (one rule's worth of settings)."""

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
    # "auto" lets the detector choose (see detectors.calibration).
    calibration: str = "auto"
    # "fixed" or "quantile" (adaptive, never below ``threshold``).
    threshold_mode: str = "fixed"
    quantile: float = 0.999
    # Hysteresis: the anomaly state closes below ``lower_threshold`` (default: threshold)
    # once it has lasted ``min_duration`` events.
    lower_threshold: float | None = None
    min_duration: int = 1
    explain: bool = True
    # "daily" or "weekly": subtract an hourly seasonal profile first (needs event time).
    seasonality: str | None = None
    # After this many consecutive anomalous events (a level shift, not a spike), start a
    # fresh detector trained on those events: the new level becomes normal within a bounded
    # number of points. None disables it.
    rebaseline_after: int | None = None


class StreamPipeline:
    """Scores then learns each event, so a score only uses the stream's past."""

    __slots__ = (
        "config", "detector", "calibrator", "threshold", "hysteresis",
        "version", "seen", "_reference", "_lower", "_name", "seasonal", "_run",
        "rebaselines",
    )

    def __init__(self, config: PipelineConfig, detector: Detector | None = None) -> None:
        self.config = config
        self.detector = detector or self._new_detector()
        self.calibrator = make_calibrator(config.calibration, self.detector)
        self.threshold = make_threshold(config.threshold_mode, config.threshold, config.quantile)
        self.hysteresis = Hysteresis(config.min_duration)
        self._lower = config.lower_threshold
        self._name = self.detector.name
        self.version = 1  # bumped on restore; refits add the detector's model_version
        self.seen = 0
        self._reference: Features | None = None  # last normal event, for explanations
        self.seasonal = SeasonalBaseline(config.seasonality) if config.seasonality else None
        if config.rebaseline_after is not None and config.rebaseline_after < 1:
            raise DetectorError(f"rebaseline_after must be >= 1 event or unset, "
                                f"got {config.rebaseline_after!r}")
        self._run: list[Features] | None = None  # the current run of anomalous events
        self.rebaselines = 0

    def _new_detector(self) -> Detector:
        c = self.config
        params = {"warmup": c.warmup, **dict(c.params)}
        if c.detector == "rarity_likelihood":
            return RarityLikelihood(**params)  # type: ignore[return-value]
        return create(c.detector, **params)

    def severity(self, score: float, is_anomaly: bool) -> str:
        if not is_anomaly:
            return "none"
        for name, low in self.config.bands:
            if score >= low:
                return name
        return "info"

    def process(self, x: Features, ts: float | None = None) -> Verdict:
        """Score then learn one event; ``ts`` (event time, Unix s) feeds seasonality."""
        if self.seasonal is not None and ts is not None:
            x = self.seasonal.adjust(x, ts)
        det = self.detector
        warming = det.warming_up
        raw = det.score_one(x)
        det.learn_one(x)
        self.seen += 1
        cal = self.calibrator
        if warming:
            score = 0.0
        else:
            warming = cal.warming_up
            score = cal(raw)
            if warming:
                score = 0.0
        thr = self.threshold
        upper = thr.value
        is_anomaly = (not warming) and score >= upper
        if not warming:
            thr.update(score)
        lower = upper if self._lower is None else self._lower
        state = self.hysteresis.update(score, upper, lower)
        contributions = None
        if is_anomaly:
            if self.config.explain and len(x) > 1:
                contributions = explain(det, x, self._reference, raw)
            if self.config.rebaseline_after is not None:
                self._track_shift(x)
        else:
            self._reference = x
            self._run = None
        return Verdict(
            score,
            upper,
            is_anomaly,
            self.severity(score, is_anomaly),
            warming,
            self._name,
            self.version + getattr(self.detector, "model_version", 0),
            contributions,
            state,
            raw,
        )

    def _track_shift(self, x: Features) -> None:
        run = self._run
        if run is None:
            run = self._run = []
        run.append(x)
        if len(run) < (self.config.rebaseline_after or 0):
            return
        # A run this long is a new level, not a spike: re-learn from it.
        old = self.detector
        det = self._new_detector()
        if getattr(old, "bind", None) is not None:
            det.bind(old.executor, old.clock)  # type: ignore[attr-defined]
        for event in run:
            det.learn_one(event)
        self.detector = det
        self._run = None
        self._reference = x
        self.rebaselines += 1
        # Versions stay monotonic although the new detector's refit count restarts at 0.
        self.version += getattr(old, "model_version", 0) + 1
