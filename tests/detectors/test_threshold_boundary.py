"""The threshold is inclusive: a calibrated score equal to the threshold is anomalous.

With ``threshold = 1.0`` (the strictest setting) only saturated scores can alert; were the
comparison strict, nothing would ever alert, not even a 1e6 spike.
"""

from __future__ import annotations

import pytest

from detectors.pipeline import PipelineConfig, StreamPipeline
from streams.settings import Settings


class FixedScores:
    """A calibrated detector that returns the scores it is given, in order."""

    name = "fixed-scores"
    calibrated = True

    def __init__(self, scores: list[float]) -> None:
        self.scores = list(scores)
        self.seen = 0

    def learn_one(self, x) -> None:
        self.seen += 1

    def score_one(self, x) -> float:
        return self.scores[self.seen]

    @property
    def warming_up(self) -> bool:
        return False


@pytest.mark.parametrize("threshold", [0.5, 0.999, 1.0])
def test_threshold_boundary_score_equal_to_threshold_is_anomalous(threshold: float) -> None:
    below = threshold - 1e-9
    p = StreamPipeline(PipelineConfig(threshold=threshold, calibration="identity", explain=False),
                       detector=FixedScores([below, threshold, below]))
    verdicts = [p.process({"value": 1.0}) for _ in range(3)]
    assert [v.score for v in verdicts] == [below, threshold, below]
    assert [v.is_anomaly for v in verdicts] == [False, True, False]
    assert verdicts[1].threshold == threshold
    assert verdicts[1].anomaly_state  # the hysteresis opens at the threshold too


def test_threshold_one_flags_a_huge_spike_with_the_default_detector() -> None:
    """The worker's default detector at the strictest threshold still flags a 1e6 spike."""
    p = StreamPipeline(PipelineConfig(detector=Settings().detector, threshold=1.0, warmup=30))
    for i in range(300):
        v = p.process({"value": 10.0 + (i % 7) * 0.1})
    assert not v.is_anomaly
    spike = p.process({"value": 1e6})
    assert spike.score == 1.0 and spike.is_anomaly
