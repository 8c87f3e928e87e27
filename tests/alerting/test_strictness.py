"""False-positive feedback makes the stream's threshold stricter: bounded, timed, liftable."""

from __future__ import annotations

import pytest

from streams.alerting.engine import AlertEngine
from streams.alerting.feedback import Strictness, parse_feedback
from streams.alerting.grouping import Grouper
from streams.alerting.lifecycle import Timings
from streams.alerting.records import parse_scored
from streams.alerting.settings import load_alerting_settings
from streams.errors import SettingsError
from tests.alerting.scored import T0, scored


def engine(strict_s: float = 1000.0, max_steps: int = 2) -> AlertEngine:
    return AlertEngine(Timings(quiet_s=60, update_interval_s=30, cooldown_s=0, lateness_s=0),
                       Grouper(window_s=60, max_individual=100), None, false_positive_suppress_s=0.0,
                       strictness=Strictness(strict_s, factor=0.1, max_steps=max_steps))


def opened(eng: AlertEngine, docs: list[dict]) -> list[str]:
    out = []
    for d in docs:
        out += [r["incident_id"] for r in eng.observe(parse_scored(d)) if r["action"] == "opened"]
    return out


def false_positive(eng: AlertEngine, inc: str, ts: float) -> dict:
    return eng.feedback(parse_feedback({"kind": "false_positive", "incident_id": inc, "ts": ts}))[0]


def test_false_positive_raises_the_score_needed_to_open_until_the_period_ends():
    eng = engine()
    inc = opened(eng, [scored("a", T0, True, score=0.9995)])[0]
    assert false_positive(eng, inc, T0 + 1)["strict_steps"] == 1
    # as strong as the false positive: no incident; ten times rarer tail (>= 0.9999): one
    assert opened(eng, [scored("a", T0 + 100, True, score=0.9995)]) == []
    assert len(opened(eng, [scored("a", T0 + 300, True, score=0.99995)])) == 1
    # other streams and other detectors keep the normal threshold
    assert len(opened(eng, [scored("b", T0 + 300, True, score=0.9995)])) == 1
    assert len(opened(eng, [scored("a", T0 + 300, True, score=0.9995, detector="hst")])) == 1
    # after strict_s of event time the stream is back to normal
    assert len(opened(eng, [scored("a", T0 + 1100, True, score=0.9995)])) == 1


def test_repeated_false_positives_stack_up_to_the_bound_then_true_positive_lifts():
    eng = engine(max_steps=2)
    inc = opened(eng, [scored("a", T0, True, score=0.99999)])[0]
    steps = [false_positive(eng, inc, T0 + i)["strict_steps"] for i in (1, 2, 3)]
    assert steps == [1, 2, 2]  # bounded: never stricter than 1 - 0.001 * 0.1**2
    assert eng.strictness.required("a", "zscore", 0.999, T0 + 10) == pytest.approx(0.99999)
    assert opened(eng, [scored("a", T0 + 100, True, score=0.99998)]) == []
    assert len(opened(eng, [scored("a", T0 + 200, True, score=0.999995)])) == 1  # strong: heard
    eng.feedback(parse_feedback({"kind": "true_positive", "incident_id": inc, "ts": T0 + 300}))
    assert len(opened(eng, [scored("a", T0 + 400, True, score=0.9995)])) == 1


def test_uncalibrated_thresholds_are_left_alone():
    s = Strictness(100.0)
    s.tighten("a", "d", 0.0)
    assert s.required("a", "d", 3.0, 1.0) == 3.0  # not a [0, 1) threshold: no tail to shrink


def test_strictness_settings_are_validated():
    a = load_alerting_settings({"PYNOMALY_FALSE_POSITIVE_STRICT_S": "60",
                                "PYNOMALY_FALSE_POSITIVE_STRICT_FACTOR": "0.5"})
    assert (a.false_positive_strict_s, a.false_positive_strict_factor) == (60.0, 0.5)
    with pytest.raises(SettingsError, match="FALSE_POSITIVE_STRICT_FACTOR"):
        load_alerting_settings({"PYNOMALY_FALSE_POSITIVE_STRICT_FACTOR": "1.5"})
