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

from detectors.calibration import (
    GaussianTailCalibrator,
    IdentityCalibrator,
    gaussian_tail,
    make_calibrator,
)
from detectors.errors import DetectorError
from detectors.explain import explain
from detectors.protocol import Detector, Features, Verdict
from detectors.rarity_params import StateVersionError
from detectors.registry import create
from detectors.seasonality import SeasonalBaseline
from detectors.thresholds import (
    DEFAULT_BANDS,
    DEFAULT_THRESHOLD,
    FixedThreshold,
    Hysteresis,
    make_threshold,
)

__all__ = ["PipelineConfig", "StreamPipeline", "StateVersionError", "gaussian_tail"]

STATE_VERSION = 2  # of a pickled StreamPipeline; 1 was the default slot layout


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """What a stream's pipeline is built from (one rule's worth of settings)."""

    detector: str = "zscore"
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    # From the false-alarm budget (detectors.thresholds.BUDGET): 0.99999.
    threshold: float = DEFAULT_THRESHOLD
    warmup: int = 30
    # Lower bounds of the severity bands on the calibrated score, each ten times rarer.
    bands: tuple[tuple[str, float], ...] = DEFAULT_BANDS
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


_FIELDS = tuple(f.name for f in dataclasses.fields(PipelineConfig))
_STATELESS_CALIBRATORS = (IdentityCalibrator, GaussianTailCalibrator)


class _Plan:
    """What every pipeline of one config shares: built (and validated) once per config."""

    __slots__ = ("config", "fields", "proto", "calibrator", "threshold", "fused", "identity",
                 "fixed", "versioned", "timed")

    def __init__(self, config: PipelineConfig, detector: Detector | None = None) -> None:
        self.config = config
        self.fields = tuple(getattr(config, f) for f in _FIELDS)  # what a pickle stores
        det = detector or _create(config)
        self.proto = det
        cal = make_calibrator(config.calibration, det)
        # Stateless calibrators and fixed thresholds are shared by every stream.
        self.calibrator = cal if isinstance(cal, _STATELESS_CALIBRATORS) else None
        self.identity = isinstance(cal, IdentityCalibrator)
        thr = make_threshold(config.threshold_mode, config.threshold, config.quantile)
        self.fixed = isinstance(thr, FixedThreshold)
        self.threshold = thr if self.fixed else None
        Hysteresis(config.min_duration)  # validates min_duration
        if config.rebaseline_after is not None and config.rebaseline_after < 1:
            raise DetectorError(f"rebaseline_after must be >= 1 event or unset, "
                                f"got {config.rebaseline_after!r}")
        self.fused = hasattr(det, "score_learn_one")
        self.timed = getattr(det, "uses_time", False)
        self.versioned = hasattr(det, "model_version")

    def new_detector(self) -> Detector:
        fresh = getattr(self.proto, "fresh", None)
        return fresh() if fresh is not None else _create(self.config)


def _create(c: PipelineConfig) -> Detector:
    return create(c.detector, **{"warmup": c.warmup, **dict(c.params)})


# id(config) -> plan; the plan holds the config, so the id cannot be reused while cached.
_PLANS: dict[int, _Plan] = {}
# A pickled config's fields -> one shared config object (restored streams share it).
_CONFIGS: dict[tuple[Any, ...], PipelineConfig] = {}


def _plan(config: PipelineConfig) -> _Plan:
    plan = _PLANS.get(id(config))
    if plan is None or plan.config is not config:
        plan = _Plan(config)
        if len(_PLANS) > 1024:  # ad-hoc configs (tests, evaluation sweeps)
            _PLANS.clear()
        _PLANS[id(config)] = plan
    return plan


_PARAMS_AT = _FIELDS.index("params")


def _intern(fields: tuple[Any, ...]) -> PipelineConfig:
    params = fields[_PARAMS_AT]
    key = (*fields[:_PARAMS_AT], tuple(sorted(params.items())) if params else (),
           *fields[_PARAMS_AT + 1:])
    try:
        config = _CONFIGS.get(key)
    except TypeError:  # unhashable parameter values: no sharing
        return PipelineConfig(*fields)
    if config is None:
        if len(_CONFIGS) > 1024:
            _CONFIGS.clear()
        config = _CONFIGS[key] = PipelineConfig(*fields)
    return config


class StreamPipeline:
    """Scores then learns each event, so a score only uses the stream's past.

    Creating one costs a few µs: everything per config (validation, stateless calibrator,
    fixed threshold) is built once and shared. It pickles as a compact versioned tuple.
    """

    __slots__ = (
        "config", "detector", "calibrator", "threshold", "version", "seen", "_reference",
        "_plan", "seasonal", "_run", "rebaselines", "_open", "_open_len",
    )

    def __init__(self, config: PipelineConfig, detector: Detector | None = None) -> None:
        plan = _plan(config)
        if detector is None:
            detector = plan.new_detector()
        elif type(detector) is not type(plan.proto):
            plan = _Plan(config, detector)
        self._setup(config, plan, detector)
        self.version = 1  # bumped on restore; refits add the detector's model_version
        self.seen = 0
        self._reference: Features | None = None  # last normal event, for explanations
        self.seasonal = SeasonalBaseline(config.seasonality) if config.seasonality else None
        self._run: list[Features] | None = None  # the current run of anomalous events
        self.rebaselines = 0
        self._open = False  # hysteresis: the anomaly state and how long it has lasted
        self._open_len = 0

    def _setup(self, config: PipelineConfig, plan: _Plan, detector: Detector) -> None:
        self.config = config
        self._plan = plan
        self.detector = detector
        self.calibrator = plan.calibrator or make_calibrator(config.calibration, detector)
        self.threshold = plan.threshold or make_threshold(
            config.threshold_mode, config.threshold, config.quantile)

    def _new_detector(self) -> Detector:
        return self._plan.new_detector()

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
        plan = self._plan
        det = self.detector
        warming = det.warming_up
        if plan.timed:
            raw = det.score_learn_at(x, ts)  # type: ignore[attr-defined]
        elif plan.fused:
            raw = det.score_learn_one(x)  # type: ignore[attr-defined]
        else:
            raw = det.score_one(x)
            det.learn_one(x)
        self.seen += 1
        if warming:
            score = 0.0
        elif plan.identity:  # IdentityCalibrator inlined: NaN is maximally surprising
            score = 1.0 if raw != raw else 0.0 if raw < 0.0 else 1.0 if raw > 1.0 else raw
        else:
            cal = self.calibrator
            warming = cal.warming_up
            score = cal(raw)
            if warming:
                score = 0.0
        thr = self.threshold
        upper = thr.value
        is_anomaly = (not warming) and score >= upper
        if not (warming or plan.fixed):
            thr.update(score)
        config = self.config
        # Hysteresis: opens at ``upper``; closes below ``lower`` after ``min_duration``.
        if not self._open:
            if score >= upper:
                self._open = True
                self._open_len = 1
        else:
            self._open_len += 1
            lower = config.lower_threshold
            if score < (upper if lower is None else lower) and self._open_len > config.min_duration:
                self._open = False
                self._open_len = 0
        # Read before any explanation: occlusion probes call score_one, which overwrites them.
        expected = getattr(det, "last_expected", None)
        evidence = det.last_evidence if plan.timed else raw  # type: ignore[attr-defined]
        contributions = None
        if is_anomaly:
            if config.explain and len(x) > 1:
                contributions = explain(det, x, self._reference, raw)
            if config.rebaseline_after is not None:
                self._track_shift(x)
            severity = self.severity(score, True)
        else:
            self._reference = x
            self._run = None
            severity = "none"
        version = self.version
        if plan.versioned:
            version += getattr(self.detector, "model_version", 0)
        return Verdict(score, upper, is_anomaly, severity, warming, det.name, version,
                       contributions, self._open, evidence, expected)

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

    def __getstate__(self) -> tuple[Any, ...]:
        plan = self._plan
        return (STATE_VERSION, plan.fields, self.detector,
                None if plan.calibrator is not None else self.calibrator,
                None if plan.threshold is not None else self.threshold,
                self.version, self.seen, self._reference, self.seasonal, self._run,
                self.rebaselines, self._open, self._open_len)

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or not state or state[0] != STATE_VERSION:
            raise StateVersionError("a pipeline checkpoint from another version of "
                                    "pynomaly; the stream starts over")
        (_, fields, detector, calibrator, threshold, self.version, self.seen, self._reference,
         self.seasonal, self._run, self.rebaselines, self._open, self._open_len) = state
        config = _intern(fields)
        plan = _plan(config)
        if type(detector) is not type(plan.proto):
            plan = _Plan(config, detector)
        self.config = config
        self._plan = plan
        self.detector = detector
        # Pickled only when per-stream; shared ones come from the plan.
        self.calibrator = calibrator or plan.calibrator  # type: ignore[assignment]
        self.threshold = threshold or plan.threshold  # type: ignore[assignment]
