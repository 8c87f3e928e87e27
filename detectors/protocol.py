"""The Detector seam: a tiny online contract, plus the verdict a stream's pipeline emits."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Protocol, runtime_checkable

Features = Mapping[str, float]

SEVERITIES = ("none", "info", "warning", "error", "critical")


@runtime_checkable
class Detector(Protocol):
    """An online detector for one stream.

    ``score_one`` returns a raw score where higher means more anomalous; it must only
    use what ``learn_one`` has seen (detection is causal). ``warming_up`` is True while
    the detector has not seen enough data for its scores to mean anything.
    """

    name: str

    def learn_one(self, x: Features) -> None: ...

    def score_one(self, x: Features) -> float: ...

    @property
    def warming_up(self) -> bool: ...


# Optional attributes a detector class may set (read with getattr, so all are optional):
#   calibrated = True        its score_one is already in [0, 1] with a shared meaning; the
#                            pipeline passes it through unchanged.
#   calibration = "..."      which calibrator suits its raw scores (see detectors.calibration).
#   model_version: int       increments on each refit (windowed detectors).
#   last_contributions       per-feature shares of the last score_one (explanations).
#   score_many(X) -> array   batch scoring for the columnar fast path.
#   uses_time = True         the pipeline calls score_learn_at(x, ts) with the event time.
#   last_expected            per feature, the (low, high) band the last scored value was
#                            expected in (set before it is learned).
#   last_evidence            the detector's own evidence for the last event (raw_score).


@dataclasses.dataclass(slots=True)
class Verdict:
    """What a stream's pipeline says about one event."""

    score: float  # calibrated to [0, 1]
    threshold: float
    is_anomaly: bool
    severity: str  # one of SEVERITIES
    warming_up: bool
    detector: str
    version: int  # model/state version: increments on refits and restores
    contributions: dict[str, float] | None = None  # per-feature share of the score
    anomaly_state: bool = False  # hysteresis: True from an opening event until it closes
    raw_score: float = 0.0  # the detector's own score, before calibration
    # Per feature, the causal band (low, high) the value was expected in, when the
    # detector provides one (``last_expected``).
    expected: dict[str, tuple[float, float]] | None = None
