"""The default detector on multivariate events, its tail calibrator and its expected band."""

from __future__ import annotations

import pickle
import random

import numpy as np

from detectors.pipeline import PipelineConfig, StreamPipeline
from detectors.rarity import Rarity, sidak
from detectors.tail import EvidenceMap, TailCalibrator

T0 = 1.7e9


def _pipe() -> StreamPipeline:
    return StreamPipeline(PipelineConfig(detector="rarity_likelihood", warmup=50))


def _calm(rng: np.random.Generator, names: list[str]) -> dict[str, float]:
    return {k: float(rng.normal(10.0 * i, 1.0 + i % 3)) for i, k in enumerate(names)}


def test_a_spike_in_the_second_of_three_features_is_found_and_named() -> None:
    rng = np.random.default_rng(1)
    pipe = _pipe()
    names = ["cpu", "mem", "disk"]
    for i in range(600):
        assert not pipe.process(_calm(rng, names), T0 + 60 * i).is_anomaly or i < 100
    x = _calm(rng, names)
    x["mem"] += 360.0
    v = pipe.process(x, T0 + 60 * 600)
    assert v.is_anomaly and v.contributions is not None
    assert max(v.contributions, key=v.contributions.__getitem__) == "mem"
    assert v.contributions["mem"] >= 0.5
    assert abs(sum(v.contributions.values()) - 1.0) < 1e-9


def test_a_spike_in_any_one_of_twenty_features_is_found() -> None:
    names = [f"f{k}" for k in range(20)]
    for target in (0, 7, 19):
        rng = np.random.default_rng(target)
        pipe = _pipe()
        for i in range(1000):
            pipe.process(_calm(rng, names), T0 + 60 * i)
        x = _calm(rng, names)
        x[names[target]] += 15.0 * (1.0 + target % 3)  # 15 of that feature's sigmas
        v = pipe.process(x, T0 + 60 * 1000)
        assert v.is_anomaly, (target, v.score)
        assert v.contributions is not None
        assert max(v.contributions, key=v.contributions.__getitem__) == names[target]


def test_fifty_calm_features_raise_no_anomaly() -> None:
    rng = np.random.default_rng(50)
    names = [f"g{k}" for k in range(50)]
    pipe = _pipe()
    anomalies = sum(pipe.process(_calm(rng, names), T0 + 60 * i).is_anomaly for i in range(10_000))
    assert anomalies == 0


def test_sidak_corrects_for_the_number_of_features() -> None:
    assert sidak(0.01, 1) == 0.01
    assert abs(sidak(1e-6, 50) - 5e-5) < 2e-9  # ~ d * p for tiny p
    assert sidak(1.0, 5) == 1.0
    assert 0.0 < sidak(1e-300, 50) < 1e-297  # no cancellation to 0


def test_every_verdict_carries_the_band_each_feature_was_expected_in() -> None:
    rng = random.Random(3)
    pipe = _pipe()
    for i in range(400):
        v = pipe.process({"a": rng.gauss(100.0, 5.0), "b": rng.gauss(0.0, 1.0)}, T0 + 60 * i)
    assert v.expected is not None
    (alo, ahi), (blo, bhi) = v.expected["a"], v.expected["b"]
    assert 80.0 < alo < 95.0 < 105.0 < ahi < 120.0
    assert -4.0 < blo < -1.5 < 1.5 < bhi < 4.0
    # The band is from the past only: a spike does not widen the band it is judged against.
    before = pipe.process({"a": 100.0, "b": 0.0}, T0 + 60 * 400).expected
    spiked = pipe.process({"a": 900.0, "b": 0.0}, T0 + 60 * 401)
    assert spiked.is_anomaly and spiked.expected is not None and before is not None
    assert spiked.expected["a"][1] < 200.0


def test_features_past_the_cap_are_counted_not_scored() -> None:
    det = Rarity(warmup=5, max_features=3)
    for i in range(50):
        det.score_learn_at({f"k{j}": float(i % 4 + j) for j in range(5)}, None)
    assert sorted(det.cores) == ["k0", "k1", "k2"]
    assert det.ignored_features == 2 * 50


def test_state_round_trips_and_resumes_identically() -> None:
    rng = np.random.default_rng(4)
    names = ["x", "y"]
    a = _pipe()
    for i in range(700):
        a.process(_calm(rng, names), T0 + 60 * i)
    b = pickle.loads(pickle.dumps(a, protocol=pickle.HIGHEST_PROTOCOL))  # noqa: S301
    for i in range(700, 1200):
        x = _calm(rng, names)
        va, vb = a.process(x, T0 + 60 * i), b.process(x, T0 + 60 * i)
        assert (va.score, va.expected, va.contributions) == (vb.score, vb.expected, vb.contributions)


def test_tail_calibrator_learns_a_heavier_tail_than_its_prior() -> None:
    rng = random.Random(5)
    light, heavy = TailCalibrator(), TailCalibrator()
    for _ in range(60_000):
        light.learn(rng.expovariate(1 / 0.12))
        heavy.learn(rng.paretovariate(2.5) * 0.1)  # xi = 0.4
    assert heavy.shape()[0] > 0.1 > light.shape()[0]  # MoM under-reads heavy tails; still heavy
    assert heavy.p_value(2.0) > 100 * light.p_value(2.0)
    # One gross spike widens the tail only a little: its excess is winsorised.
    before = light.p_value(1.5)
    light.learn(1e9)
    assert light.p_value(1.5) < 1.5 * before


def test_evidence_map_is_monotone_and_extrapolates_its_tail() -> None:
    from detectors.rarity_table import KNOTS

    m = EvidenceMap(KNOTS)
    grid = [i / 100 for i in range(0, 400)]
    ps = [m(e) for e in grid]
    assert all(a >= b for a, b in zip(ps, ps[1:], strict=False))
    assert ps[0] == 1.0 and m(KNOTS[-1][0]) == 10.0 ** -KNOTS[-1][1]
    assert m(5.0) < 1e-12 and m(float("inf")) == 0.0 and m(float("nan")) == 1.0


def test_a_spike_beside_a_young_feature_is_blamed_on_the_feature_that_moved() -> None:
    """A feature that appears just before a spike in another is not scored yet (young):
    the spike's feature takes the whole contribution, and the verdict's band and evidence
    are those of the spike (explanations must not overwrite them)."""
    rng = np.random.default_rng(8)
    pipe = _pipe()
    for i in range(2000):
        pipe.process({"cpu": float(rng.normal(50.0, 1.0))}, T0 + 60 * i)
    for i in range(2000, 2010):
        pipe.process({"cpu": float(rng.normal(50.0, 1.0)), "mem": float(rng.normal(5.0, 1.0))},
                     T0 + 60 * i)
    band = pipe.detector.cores["cpu"].expected(0.99)  # type: ignore[attr-defined]
    v = pipe.process({"cpu": 500.0, "mem": 5.0}, T0 + 60 * 2010)
    assert v.is_anomaly and v.contributions == {"cpu": 1.0, "mem": 0.0}
    assert v.expected is not None and v.expected["cpu"] == band and v.expected["cpu"][1] < 60.0
    assert v.raw_score > 2.0  # the spike's evidence, not a probe's
