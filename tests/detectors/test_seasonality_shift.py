"""Seasonal baselines and level-shift re-baselining."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors.pipeline import PipelineConfig, StreamPipeline
from detectors.rules import PipelineFactory, RulesError

HOUR = 3600.0


def daily_stream(days: int, seed: int = 0):
    """Hourly values: a strong daily swing (10 +- 8) plus noise."""
    rng = np.random.default_rng(seed)
    for i in range(days * 24):
        ts = i * HOUR
        yield ts, {"v": 10.0 + 8.0 * math.sin(2 * math.pi * (i % 24) / 24) + 0.3 * rng.normal()}


def run(p: StreamPipeline, days: int):
    return [(ts, x, p.process(x, ts)) for ts, x in daily_stream(days)]


def test_daily_seasonality_flags_the_off_hour_value_not_the_daily_peak() -> None:
    plain = StreamPipeline(PipelineConfig(detector="zscore", params={"alpha": 0.05}))
    seasonal = StreamPipeline(PipelineConfig(detector="zscore", params={"alpha": 0.05},
                                             seasonality="daily"))
    run(plain, 30)
    run(seasonal, 30)
    # The usual peak (hour 6: 18) at its hour, and the same value at the trough hour (18).
    peak_at_peak = {"v": 18.0}
    t_peak, t_trough = (30 * 24 + 6) * HOUR, (30 * 24 + 18) * HOUR
    assert not seasonal.process(peak_at_peak, t_peak).is_anomaly
    assert seasonal.process({"v": 18.0}, t_trough).is_anomaly
    # Without the profile the swing looks like variance: the off-hour value is not caught.
    assert not plain.process({"v": 18.0}, t_trough).is_anomaly


def test_without_event_time_seasonality_is_skipped() -> None:
    p = StreamPipeline(PipelineConfig(detector="zscore", seasonality="weekly"))
    for i in range(50):
        p.process({"v": 1.0 + 0.01 * (i % 3)})
    assert p.seasonal is not None and not p.seasonal.n


# Detectors that never forget (cumulative statistics) flag a new level for ever without
# re-baselining; windowed ones flag it until refits have seen enough of it.
SHIFT_CASES = [("sad", {"window": None}), ("gaussian", {"window_size": None}),
               ("pyod.pca", {"window": 64, "refit_every": 32, "min_fit": 32})]


@pytest.mark.parametrize(("detector", "params"), SHIFT_CASES)
def test_level_shift_is_rebaselined_within_a_bounded_number_of_points(detector, params) -> None:
    rng = np.random.default_rng(0)
    cfgs = {n: PipelineConfig(detector=detector, params=params, warmup=20, rebaseline_after=n)
            for n in (None, 10)}
    flagged = {}
    for n, cfg in cfgs.items():
        p = StreamPipeline(cfg)
        rng = np.random.default_rng(0)
        for _ in range(400):
            p.process({"a": float(10 + rng.normal()), "b": float(rng.normal())})
        verdicts = [p.process({"a": float(40 + rng.normal()), "b": float(rng.normal())})
                    for _ in range(300)]
        flagged[n] = [i for i, v in enumerate(verdicts) if v.is_anomaly]
        versions = [v.version for v in verdicts]
        assert versions == sorted(versions)
        if n:
            assert p.rebaselines >= 1
    # Re-baselined after 10 points: later flags are only the ordinary 0.1 % tail.
    assert flagged[10][:10] == list(range(10))
    assert len([i for i in flagged[10] if i >= 10]) <= 6
    assert len(flagged[None]) > len(flagged[10])  # pca measured 16 -> 10


def test_rules_validate_seasonality_and_rebaseline() -> None:
    f = PipelineFactory.from_table({"rules": [{"match": "web.*", "seasonality": "weekly",
                                               "rebaseline_after": 30}]})
    assert f.create("web.latency").seasonal.slots == 168
    with pytest.raises(RulesError, match="unknown seasonality 'monthly'"):
        PipelineFactory.from_table({"rules": [{"match": "x", "seasonality": "monthly"}]})
    with pytest.raises(RulesError, match="rebaseline_after must be >= 1"):
        PipelineFactory.from_table({"default": {"rebaseline_after": 0}})
