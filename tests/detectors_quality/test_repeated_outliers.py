"""rarity_likelihood keeps alarming on repeated isolated spikes."""

import random

from detectors.ensemble import RarityLikelihood


def alarms(det: RarityLikelihood, spikes: tuple[int, ...], n: int = 900, mag: float = 8.0) -> list[int]:
    rng = random.Random(0)
    hits = []
    for i in range(n):
        v = 10 + rng.gauss(0, 1) + (mag if i in spikes else 0)
        if det.score_one({"value": v}) >= 0.999 and i > 100:
            hits.append(i)
        det.learn_one({"value": v})
    return hits


def test_three_equal_well_separated_spikes_all_alarm():
    spikes = (200, 500, 800)
    assert alarms(RarityLikelihood(warmup=50), spikes) == list(spikes)


def test_without_forgetting_spikes_a_repeat_goes_unnoticed():
    spikes = (200, 500, 800)
    assert alarms(RarityLikelihood(warmup=50, forget_spikes=0.0), spikes) != list(spikes)


def test_the_outlier_channel_catches_a_quick_repeat_too():
    assert alarms(RarityLikelihood(warmup=50, outlier_z=20.0), (200, 225), n=400, mag=40.0) == [200, 225]
