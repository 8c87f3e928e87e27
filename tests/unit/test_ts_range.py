"""Issue 13, finding 5: event times are bounded against the wall clock (passed in).

A numeric ``ts`` up to 1e11 (year 5138) and any RFC 3339 time were accepted; one such
event resolved every open incident of its partition. Times more than
``max_event_future_s`` ahead of the clock (and, when set, more than ``max_event_age_s``
behind it) are dead-lettered as ``ts_out_of_range``.
"""

import orjson
import pytest
from prometheus_client import CollectorRegistry

from streams.codec import REASONS, DeadLetter, Event, decode_record
from streams.metrics import Metrics
from streams.scoring import BatchScorer, RawRecord, StreamScorer, default_pipeline_factory
from streams.settings import load_settings

NOW = 1_796_000_000.0  # the clock the tests pass in (2026-12)


def run(records, **settings_overrides):
    settings = load_settings(environ={}, **settings_overrides)
    registry = CollectorRegistry()
    bs = BatchScorer(settings, StreamScorer(default_pipeline_factory(settings)), Metrics(registry),
                     clock=lambda: NOW)
    return bs.run(records), registry


def rec(value, offset=0, ts_ms=None, key=b"s"):
    return RawRecord(key, value if isinstance(value, bytes) else orjson.dumps(value), ts_ms, "ev", 0, offset)


@pytest.mark.parametrize("ts", [99_999_999_999, NOW + 2 * 86400, "5138-11-16T09:46:39Z", "9999-12-31T23:59:59Z"])
def test_far_future_event_times_are_dead_lettered(ts):
    out, registry = run([rec({"stream": "s", "ts": ts, "value": 1.0})])
    assert not out.scores
    [(_, dl)] = out.deadletters
    doc = orjson.loads(dl)
    assert doc["reason"] == "ts_out_of_range" and "ts_out_of_range" in REASONS
    assert "max_event_future_s" in doc["message"]
    assert registry.get_sample_value("pynomaly_events_deadlettered_total", {"reason": "ts_out_of_range"}) == 1


def test_times_within_the_skew_and_old_times_are_scored():
    docs = [{"stream": "s", "ts": NOW + 3600, "value": 1.0},  # an hour ahead: clock skew
            {"stream": "s", "ts": 1_388_534_400, "value": 1.0},  # 2014: a backfill, NAB
            {"stream": "s", "ts": "2026-11-30T10:00:00", "value": 1.0}]  # local time as UTC
    out, _ = run([rec(d, i) for i, d in enumerate(docs)])
    assert len(out.scores) == 3 and not out.deadletters


def test_the_skew_and_the_age_limit_are_configurable():
    docs = [{"stream": "s", "ts": NOW + 700, "value": 1.0}, {"stream": "s", "ts": NOW - 7200, "value": 1.0},
            {"stream": "s", "ts": NOW - 60, "value": 1.0}]
    out, _ = run([rec(d, i) for i, d in enumerate(docs)], max_event_future_s=600, max_event_age_s=3600)
    assert [orjson.loads(v)["source"]["offset"] for _, v in out.scores] == [2]
    assert [orjson.loads(v)["reason"] for _, v in out.deadletters] == ["ts_out_of_range"] * 2


def test_a_record_timestamp_used_as_event_time_is_bounded_too():
    out, _ = run([rec({"stream": "s", "value": 1.0}, ts_ms=int((NOW + 10 * 86400) * 1000))])
    assert [orjson.loads(v)["reason"] for _, v in out.deadletters] == ["ts_out_of_range"]


def test_the_common_path_and_arrays_give_the_same_verdict():
    hi = NOW + 86400
    for raw in (b'{"stream":"s","value":1,"ts":%d}' % (NOW + 2 * 86400),
                b'[{"stream":"s","value":1,"ts":%d}]' % (NOW + 2 * 86400)):
        [item] = decode_record(b"s", raw, None, "ev", 0, 0, 10_000, 10, ts_range=(0.0, hi))
        assert isinstance(item, DeadLetter) and item.reason == "ts_out_of_range"
    [ok] = decode_record(b"s", b'{"stream":"s","value":1,"ts":%d}' % NOW, None, "ev", 0, 0, 10_000, 10,
                         ts_range=(0.0, hi))
    assert isinstance(ok, Event)
