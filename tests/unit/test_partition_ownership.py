"""Issue 13, finding 2: a stream arriving on two partitions is never silently dropped.

Offsets of different partitions are not comparable: an event on another partition than
the one its stream was first learned from is scored (and counted as an ownership
violation), never taken for a replay.
"""

import orjson
from prometheus_client import CollectorRegistry

from streams.metrics import Metrics
from streams.scoring import BatchScorer, RawRecord, StreamScorer, default_pipeline_factory
from streams.settings import load_settings


def make():
    settings = load_settings(environ={})
    registry = CollectorRegistry()
    scorer = StreamScorer(default_pipeline_factory(settings))
    return BatchScorer(settings, scorer, Metrics(registry), clock=lambda: 2e9), scorer, registry


def event(partition, offset, i, stream="split-1"):
    doc = {"stream": stream, "ts": 1_790_000_000 + i, "value": 10.0 + i % 3}
    return RawRecord(stream.encode(), orjson.dumps(doc), None, "ev", partition, offset)


def test_every_event_of_a_stream_split_over_two_partitions_is_scored():
    bs, _, registry = make()
    # The case: every second event on another partition, at lower offsets there.
    records = [event(i % 2, 2000 + i if i % 2 == 0 else i, i) for i in range(100)]
    out = bs.run(records[:50])
    out2 = bs.run(records[50:])
    scored = [(d["source"]["partition"], d["source"]["offset"])
              for d in (orjson.loads(v) for _, v in out.scores + out2.scores)]
    assert sorted(scored) == sorted((r.partition, r.offset) for r in records)
    assert registry.get_sample_value("pynomaly_events_replayed_skipped_total") == 0
    assert registry.get_sample_value("pynomaly_partition_ownership_violations_total") == 50


def test_a_replay_on_the_owning_partition_is_still_skipped():
    bs, scorer, registry = make()
    scorer.restore("split-1", scorer.factory("split-1", None), 0, 10)
    out = bs.run([event(0, o, o) for o in range(8, 14)])
    assert [orjson.loads(v)["source"]["offset"] for _, v in out.scores] == [11, 12, 13]
    assert registry.get_sample_value("pynomaly_events_replayed_skipped_total") == 3
    # ... while the same offsets on another partition are new events
    out = bs.run([event(1, o, o) for o in range(8, 11)])
    assert len(out.scores) == 3
    assert scorer.owner["split-1"][0] == 0  # the owning partition does not change
