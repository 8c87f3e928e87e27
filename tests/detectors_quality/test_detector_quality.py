"""The default detector: causal, deterministic, picklable, and it ranks injected anomalies high."""

from __future__ import annotations

import math
import pickle
import random

from detectors import create
from detectors.ensemble import RarityLikelihood
from detectors.evaluate import DEFAULT_DETECTOR
from detectors.pipeline import PipelineConfig, StreamPipeline
from detectors.rarity import Rarity


def _series(n: int, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    return [10.0 + 3.0 * math.sin(2 * math.pi * i / 96) + rng.gauss(0, 0.5) for i in range(n)]


def _pipeline_scores(values: list[float]) -> list[float]:
    pipe = StreamPipeline(PipelineConfig(detector=DEFAULT_DETECTOR))
    return [pipe.process({"value": v}).score for v in values]


def test_default_is_registered_and_calibrated() -> None:
    det = create(DEFAULT_DETECTOR)
    assert isinstance(det, Rarity)
    assert det.calibrated is True


def test_causal_prefix_scores_equal_scores_prefix() -> None:
    values = _series(1500)
    values[900] += 8.0
    full = _pipeline_scores(values)
    assert _pipeline_scores(values[:1000]) == full[:1000]
    assert _pipeline_scores(values[:901]) == full[:901]


def test_deterministic_and_pickle_resumes_identically() -> None:
    values = _series(1200, seed=3)
    det = RarityLikelihood()
    for v in values[:700]:
        det.score_one({"value": v})
        det.learn_one({"value": v})
    clone = pickle.loads(pickle.dumps(det))
    a, b = [], []
    for v in values[700:]:
        a.append(det.score_one({"value": v}))
        det.learn_one({"value": v})
        b.append(clone.score_one({"value": v}))
        clone.learn_one({"value": v})
    assert a == b
    assert len(pickle.dumps(det)) < 200_000  # bounded state: windows, not the whole stream


def test_injected_spikes_rank_highest() -> None:
    values = _series(3600, seed=5)
    # Spikes about 10 noise sigmas high, further apart than the detector's history window.
    spikes = {1200: 5.0, 2300: -5.0, 3400: 5.0}
    for i, bump in spikes.items():
        values[i] += bump
    scores = _pipeline_scores(values)
    top = sorted(range(500, len(scores)), key=lambda i: -scores[i])[:6]
    for i in spikes:
        assert any(abs(i - j) <= 2 for j in top), (i, top)
        assert scores[i] >= 0.99


def test_level_shift_alarms_soon_after_it_starts() -> None:
    values = _series(2400, seed=10)
    for i in range(1600, 2400):
        values[i] += 4.0  # a step that stays inside the old seasonal swing at first
    scores = _pipeline_scores(values)
    assert max(scores[800:1600]) < 0.999
    assert max(scores[1600:1660]) >= 0.999


def test_bad_values_do_not_poison_state() -> None:
    det = RarityLikelihood(warmup=5)
    for v in _series(400):
        det.learn_one({"value": v})
    before = det.score_one({"value": 10.0})
    assert det.score_one({"value": math.nan}) == 0.0
    assert det.score_one({"value": -math.inf}) == 1.0
    det.learn_one({"value": math.nan})
    det.learn_one({"value": math.inf})
    assert det.score_one({"value": 10.0}) == before
    assert math.isfinite(before)
