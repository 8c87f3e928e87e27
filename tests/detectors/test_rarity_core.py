"""The default detector's univariate core (detectors/ensemble.py): causality over seasonal
synthetic series and NAB files, the seasonal channel, spikes that re-arm per stream, and
the versioned state.

Causality: the evidence of any prefix equals the evidence of that prefix run alone, and a
pickle mid-stream changes nothing that follows (a channel that kept state outside the
stream, or read ahead, would fail here).
"""

from __future__ import annotations

import csv
import math
import pickle
import random
from pathlib import Path

import pytest

from detectors.ensemble import RarityLikelihood
from detectors.rarity_params import StateVersionError
from detectors.seasonal_channel import SeasonalChannel

NAB = Path(__file__).resolve().parents[2].parent / "shared" / "nab" / "data"
# Files where the seasonal channel takes part (daily/weekly) and where spikes repeat.
NAB_FILES = ("artificialWithAnomaly/art_daily_flatmiddle.csv",
             "realKnownCause/nyc_taxi.csv",
             "realAWSCloudwatch/ec2_cpu_utilization_c6585a.csv",
             "realTraffic/TravelTime_451.csv")
STEP = 300.0  # five minutes
DAY = 288  # events per day at five minutes

Series = list[tuple[float, float | None]]


def _seasonal(seed: int, days: int = 22, holiday: int | None = 19) -> Series:
    """A daily and weekly pattern with noise and a few spikes, 5-minute steps; on day
    ``holiday`` business hours do not come (a contextual anomaly: every value is in range)."""
    rng = random.Random(seed)
    out: Series = []
    t0 = 1.7e9 - (1.7e9 % 86400.0)
    for i in range(days * DAY):
        day, phase = divmod(i, DAY)
        # Business hours (9:00-17:00) run 20 higher; a smooth swing on top.
        busy = 20.0 if 108 <= phase < 204 and day != holiday else 0.0
        swing = busy + 5.0 * math.sin(2 * math.pi * phase / DAY)
        weekend = -8.0 if day % 7 in (2, 3) else 0.0
        v = 50.0 + swing + weekend + rng.gauss(0.0, 1.0)
        if rng.random() < 0.002:
            v += rng.choice((-1.0, 1.0)) * rng.uniform(20.0, 60.0)
        out.append((v, t0 + STEP * i))
    return out


def _nab(rel: str) -> Series:
    from detectors.evaluate import parse_time

    with (NAB / rel).open() as f:
        return [(float(row["value"]), parse_time(row["timestamp"])) for row in csv.DictReader(f)]


def _run(series: Series, pickle_at: int | None = None) -> list[float]:
    det = RarityLikelihood()
    out = []
    for i, (v, ts) in enumerate(series):
        if i == pickle_at:
            det = pickle.loads(pickle.dumps(det, protocol=pickle.HIGHEST_PROTOCOL))  # noqa: S301
        out.append(det.evidence_learn(v, ts))
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_prefix_of_a_seasonal_series_scores_as_if_run_alone(seed: int) -> None:
    series = _seasonal(seed)
    full = _run(series, pickle_at=4000)
    assert max(full[19 * DAY:19 * DAY + 200]) > 1.0, "the holiday no longer alarms"
    for cut in (250, 2 * DAY + 17, 9 * DAY + 5, 19 * DAY + 200):
        assert _run(series[:cut]) == full[:cut], f"prefix of {cut} events differs"


@pytest.mark.parametrize("rel", NAB_FILES)
def test_prefix_of_a_nab_file_scores_as_if_run_alone(rel: str) -> None:
    if not (NAB / rel).exists():
        pytest.skip("NAB corpus not present (../shared beside the checkout)")
    series = _nab(rel)
    full = _run(series, pickle_at=len(series) // 4)
    for cut in (len(series) // 3, (2 * len(series)) // 3 + 11):
        assert _run(series[:cut]) == full[:cut], f"{rel}: prefix of {cut} differs"


def test_a_missing_business_day_alarms_only_through_the_seasonal_channel() -> None:
    """Day 19 has no business hours: every value is inside the usual range, so only the
    seasonal channel can see it; with event times it alarms that day, without it does not,
    and the quiet days before it do not alarm."""
    series = _seasonal(5)
    clean = [(v, ts) for v, ts in _seasonal(5, holiday=None)]
    timed = _run(series)
    untimed = _run([(v, None) for v, _ in series])
    baseline = _run(clean)
    day19 = slice(19 * DAY, 20 * DAY)
    assert max(timed[day19]) > 1.0
    assert max(untimed[day19]) < 1.0
    # The same stream without the holiday: the seasonal channel stays quiet on day 19.
    assert max(baseline[day19]) < 1.0


def test_the_seasonal_channel_finds_the_period_from_event_times() -> None:
    daily = SeasonalChannel()
    walk = SeasonalChannel()
    rng = random.Random(9)
    level = 0.0
    for i in range(10 * DAY):
        daily.score_learn(10.0 * math.sin(2 * math.pi * i / DAY) + rng.gauss(0, 1), STEP * i)
        level += rng.gauss(0.0, 1.0)
        walk.score_learn(level, STEP * i)
    assert daily.period_name() == "daily"
    assert walk.period_name() == "none"
    assert daily.expected(10 * DAY * STEP) is not None and walk.expected(0.0) is None


def test_spikes_the_stream_makes_every_day_stop_alarming() -> None:
    """With ``spike_rate=3`` (off by default: under the per-stream tail calibrator it cost
    NAB points, see docs/detectors.md) a spike far beyond the range alarms the first time;
    once the stream has made a few of them, a repeat scores the stream's own spike rate
    (below the alarm level), while a spike larger than every earlier one still alarms."""
    rng = random.Random(4)
    det = RarityLikelihood(spike_rate=3)
    spike_ev = []
    for i in range(9 * DAY):
        v = rng.gauss(1.0, 0.05)
        if i % DAY == 100:
            v = 10.0 + rng.uniform(0.0, 0.5)
        e = det.evidence_learn(v, None)
        if i % DAY == 100:
            spike_ev.append(e)
    assert spike_ev[0] > 1.0
    assert max(spike_ev[4:]) < 1.0, spike_ev
    assert det.evidence_learn(30.0, None) > 1.0


def test_evidence_of_nonfinite_values_and_the_expected_band() -> None:
    det = RarityLikelihood()
    assert det.expected() is None
    for v, _ in _seasonal(3, days=2):
        det.evidence_learn(v, None)  # no event time: quantiles of the recent values
    lo, hi = det.expected(0.99) or (math.nan, math.nan)
    assert 40.0 < lo < 50.0 < 70.0 < hi < 90.0
    n = det.n
    assert det.evidence_learn(math.nan, None) == 0.0
    assert det.evidence_learn(math.inf, 1.7e9) == math.inf
    assert det.n == n, "a non-finite value was learned"


def test_a_state_from_the_previous_version_is_refused() -> None:
    det = RarityLikelihood()
    for v, ts in _seasonal(1, days=1):
        det.evidence_learn(v, ts)
    state = list(det.__getstate__())
    state[0] = 2  # the layout before the seasonal channel and the spike count
    with pytest.raises(StateVersionError):
        RarityLikelihood.__new__(RarityLikelihood).__setstate__(tuple(state))


def test_the_band_follows_the_season_and_covers_what_it_promises() -> None:
    """With a daily season the band is the seasonal prediction for the next event's phase:
    much narrower than the stream's range, and it holds about 99% of the next values."""
    det = RarityLikelihood()
    plain = RarityLikelihood()  # the same values without event times: no season
    series = _seasonal(7, days=8, holiday=None)
    inside = total = 0
    ratios = []
    for i, (v, ts) in enumerate(series):
        band = det.expected(0.99)
        wide = plain.expected(0.99)
        if i >= 4 * DAY and band is not None and wide is not None:
            total += 1
            inside += band[0] <= v <= band[1]
            ratios.append((band[1] - band[0]) / (wide[1] - wide[0]))
        det.evidence_learn(v, ts)
        plain.evidence_learn(v, None)
    assert total == 4 * DAY
    assert 0.97 <= inside / total <= 1.0
    assert max(ratios) < 0.75
