"""rarity_likelihood's optional outlier channel: repeated gross spikes keep alarming."""

import random

from detectors.ensemble import RarityLikelihood


def alarms(det: RarityLikelihood, spikes: tuple[int, ...]) -> list[int]:
    rng = random.Random(1)
    hits = []
    for i in range(200):
        v = 50 + rng.gauss(0, 2) + (40 if i in spikes else 0)
        if det.score_one({"value": v}) >= 0.999:
            hits.append(i)
        det.learn_one({"value": v})
    return hits


def test_default_damps_a_repeat_spike_but_the_outlier_channel_catches_it():
    assert alarms(RarityLikelihood(), (60, 85)) == [60]
    assert alarms(RarityLikelihood(outlier_z=20.0), (60, 85)) == [60, 85]
