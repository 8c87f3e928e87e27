"""A score means what it says: on a stationary stream about ``1 - s`` of the events score
above ``s``, whatever the noise, and no stream pages beyond the false-alarm budget.

Streams of 10^5 events (the worker's default pipeline, one event a minute) of Gaussian,
Student-t(3), Poisson(3) and spiky log-normal noise. After the young-stream period
(``settle``), the fraction of events over ``s`` must lie within [0.5, 2] x (1 - s) for
s = 0.99 and 0.999 and be at most 2 x (1 - s) for 0.9999. Incidents are counted as the
alerting defaults open them at one event a minute (an anomaly more than quiet_s +
cooldown_s = 90 s after the last one opens a new incident); 10^5 minutes are 69 days, so
the documented budget (one per 30 days) allows 2.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors.pipeline import StreamPipeline
from detectors.rules import PipelineFactory
from detectors.thresholds import BUDGET
from streams.settings import Settings

N = 100_000
STEP_S = 60.0
SETTLE = 3000  # the default detector's young-stream period (detectors/rarity.py)
NOISE = {
    "gaussian": lambda rng: rng.normal(0.0, 1.0, N),
    "student_t3": lambda rng: rng.standard_t(3, N),
    "poisson3": lambda rng: rng.poisson(3, N).astype(float),
    "spiky_lognormal": lambda rng: rng.lognormal(0.0, 1.0, N),
}


def _run(values: np.ndarray) -> tuple[np.ndarray, list[int]]:
    pipe = StreamPipeline(PipelineFactory.from_settings(Settings()).default)
    scores = np.empty(len(values))
    incidents: list[int] = []
    last = -math.inf
    for i, v in enumerate(values):
        verdict = pipe.process({"value": float(v)}, 1.7e9 + STEP_S * i)
        scores[i] = verdict.score
        if verdict.is_anomaly:
            if (i - last) * STEP_S > 90.0:
                incidents.append(i)
            last = i
    return scores, incidents


@pytest.mark.parametrize("kind", sorted(NOISE))
def test_scores_are_calibrated_and_pages_stay_within_budget(kind: str) -> None:
    values = NOISE[kind](np.random.default_rng(2026))
    scores, incidents = _run(values)
    settled = scores[SETTLE:]
    for s in (0.99, 0.999, 0.9999):
        ratio = float((settled >= s).mean()) / (1.0 - s)
        low = 0.5 if s < 0.9999 else 0.0
        assert low <= ratio <= 2.0, f"{kind}: {ratio:.2f} x the promised rate above {s}"
    incidents_allowed, period_s, _ = BUDGET
    budget = math.floor(incidents_allowed * N * STEP_S / period_s)
    assert len(incidents) <= budget, f"{kind}: {len(incidents)} incidents at events {incidents}"


def test_a_miscalibrated_mapping_fails_the_check() -> None:
    """The check can fail: the core's own nominal score (1 - 10^(-3 s)), which the
    previous release used as the calibrated score, is 20 times too cautious at 0.99."""
    from detectors.ensemble import RarityLikelihood

    det = RarityLikelihood(warmup=50)
    values = NOISE["gaussian"](np.random.default_rng(7))[:30_000]
    nominal = np.array([1.0 - 10.0 ** (-3.0 * det.evidence_learn(float(v), None)) for v in values])
    ratio = float((nominal[SETTLE:] >= 0.99).mean()) / 0.01
    assert ratio < 0.5
