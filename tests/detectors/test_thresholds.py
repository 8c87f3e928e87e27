"""Thresholds: the false-alarm budget, fixed and streaming-quantile thresholds, their checks."""

from __future__ import annotations

import math
import random

import pytest

from detectors.errors import DetectorError
from detectors.thresholds import (
    DEFAULT_BANDS,
    DEFAULT_THRESHOLD,
    FixedThreshold,
    QuantileThreshold,
    _logit,
    make_threshold,
    threshold_for_budget,
)


@pytest.mark.parametrize(("budget", "expected"), [
    ((1, 30 * 86400, 60), 0.99999),  # one per month of one-minute data: rate 1.2e-5 -> 1e-5
    ((1, 86400, 60), 0.9999),  # one per day: 3.5e-4 -> 1e-4
    ((1, 3600, 60), 0.999),  # one per hour: 8.3e-3 -> 1e-3
    ((1, 86400, 60, 1.0), 0.9999),  # no slack: 6.9e-4 -> 1e-4
    ((1, 121, 60, 1.0), 0.9),  # just under half of the events: 0.496 -> 0.1
    ((10, 86400, 60), 0.999),  # ten per day: 3.5e-3
])
def test_threshold_for_budget(budget, expected):
    assert threshold_for_budget(*budget) == expected


@pytest.mark.parametrize("budget", [
    (0, 86400, 60), (1, 0, 60), (1, 86400, 0), (1, 86400, 60, 0.99),
    (1, 120, 60, 1.0),  # exactly half of the events may alarm: refused
])
def test_impossible_budgets_are_refused(budget):
    with pytest.raises(DetectorError, match="budget"):
        threshold_for_budget(*budget)


def test_default_threshold_and_bands_follow_the_budget():
    assert DEFAULT_THRESHOLD == 0.99999
    assert DEFAULT_BANDS == (("critical", 0.9999999), ("error", 0.999999), ("warning", 0.99999),
                             ("info", 0.0))


def test_make_threshold_modes_and_checks():
    fixed = make_threshold("fixed", 0.99)
    assert isinstance(fixed, FixedThreshold) and fixed.value == 0.99
    fixed.update(1.0)
    assert fixed.value == 0.99
    adaptive = make_threshold("quantile", 0.9, quantile=0.95)
    assert isinstance(adaptive, QuantileThreshold)
    assert (adaptive.value, adaptive.floor, adaptive.q) == (0.9, 0.9, 0.95)
    assert make_threshold("fixed", 0.0).value == 0.0 and make_threshold("fixed", 1.0).value == 1.0
    for bad in (-0.01, 1.01):
        with pytest.raises(DetectorError, match=r"\[0, 1\]"):
            make_threshold("fixed", bad)
    with pytest.raises(DetectorError, match="fixed, quantile"):
        make_threshold("adaptive", 0.9)


@pytest.mark.parametrize("q", [0.0, 1.0, 1.5])
def test_quantile_must_be_inside_the_unit_interval(q):
    with pytest.raises(DetectorError, match=r"\(0, 1\)"):
        QuantileThreshold(0.5, q)


def test_quantile_threshold_steps_in_logit_space():
    thr = QuantileThreshold(floor=0.5, quantile=0.9, rate=0.1)
    start = _logit(0.5)
    thr.update(0.99)  # above: up by rate * q
    assert math.isclose(thr._logit, start + 0.1 * 0.9)
    assert math.isclose(thr.value, 1 / (1 + math.exp(-(start + 0.09))))
    thr.update(0.01)  # below: down by rate * (1 - q)
    assert math.isclose(thr._logit, start + 0.09 - 0.01)
    for _ in range(50):
        thr.update(0.0)  # extreme scores are clamped, never a math error
    assert thr.value == 0.5  # never below the floor
    thr.update(1.0)
    assert thr.value == 0.5 and thr._logit < start


def test_quantile_threshold_settles_at_the_quantile():
    rng = random.Random(4)
    thr = QuantileThreshold(floor=0.5, quantile=0.9, rate=0.02)
    for _ in range(20_000):
        thr.update(rng.random())
    assert abs(thr.value - 0.9) < 0.03
    assert QuantileThreshold(floor=0.95, quantile=0.9).value == 0.95
