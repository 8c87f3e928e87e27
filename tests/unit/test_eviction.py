"""Stream cap and replay marks without a broker: eviction with no checkpoint store drops the
coldest streams, the index packs (partition, offset), and a replay up to a previous owner's
progress mark learns events without writing their outputs again."""

import pickle

import orjson
import pytest
from prometheus_client import CollectorRegistry

from streams.errors import SettingsError
from streams.eviction import StreamEvictor, _pack, _unpack
from streams.metrics import Metrics
from streams.scoring import BatchScorer, RawRecord, StreamScorer, default_pipeline_factory
from streams.settings import load_settings


def stack():
    settings = load_settings(environ={"PYNOMALY_WARMUP_EVENTS": "2"})
    scorer = StreamScorer(default_pipeline_factory(settings))
    registry = CollectorRegistry()
    return BatchScorer(settings, scorer, Metrics(registry), clock=lambda: 2e9), scorer, registry


def rec(offset, stream, value=1.0, partition=0, raw=None):
    doc = raw if raw is not None else orjson.dumps({"stream": stream, "ts": 1_790_000_000 + offset,
                                                     "value": value})
    return RawRecord(stream.encode(), doc, None, "ev", partition, offset)


async def test_without_a_store_the_coldest_streams_are_dropped():
    bs, scorer, registry = stack()
    m = Metrics(CollectorRegistry())
    evictor = StreamEvictor(scorer, None, cap=3, evictions=m.streams_evicted)
    for i, s in enumerate("abcde"):
        out = bs.run([rec(i, s)])
        evictor.touch_output(out)
        await evictor.enforce()
        assert len(scorer.pipelines) <= 3
    bs.run([rec(10, "c")])
    evictor.touch([b"c"])
    bs.run([rec(11, "f")])
    evictor.touch(["f"])
    assert await evictor.enforce() == 1
    assert set(scorer.pipelines) == {"c", "e", "f"}  # d was the least recently used
    assert m.registry.get_sample_value("pynomaly_streams_evicted_total") == 3
    assert evictor.index == {}  # nothing to restore from: dropped streams re-warm
    assert await evictor.restore_for([b"a", b"d"]) == 0


def test_a_cap_below_one_is_a_settings_error():
    _, scorer, _ = stack()
    with pytest.raises(SettingsError, match="max_streams_in_memory"):
        StreamEvictor(scorer, None, cap=0)
    with pytest.raises(SettingsError, match="max_streams_in_memory"):
        load_settings(environ={"PYNOMALY_MAX_STREAMS_IN_MEMORY": "-1"})
    assert load_settings(environ={}).max_streams_in_memory == 100_000


def test_index_entries_pack_partition_and_offset():
    for partition, offset in ((0, 0), (7, 123_456_789), (65_535, 2**40)):
        assert _unpack(_pack(partition, offset)) == (partition, offset)


def test_plan_indexes_what_is_not_loaded():
    _, scorer, _ = stack()
    evictor = StreamEvictor(scorer, None, cap=2)
    assert evictor.free_capacity() == 2
    evictor.plan(3, {"a": 5, "b": 9, "c": 7}, loaded=["b", "c"])
    assert {s: _unpack(e) for s, e in evictor.index.items()} == {"a": (3, 5)}
    evictor.forget_partitions({3})
    assert evictor.index == {}


def test_a_replay_up_to_the_progress_mark_learns_but_writes_nothing_again():
    events = [rec(i, f"s{i % 2}", 10.0 + i % 3) for i in range(8)]
    events.insert(3, rec(3, "s1", raw=b"not json"))  # a dead letter inside the replayed range
    for i, r in enumerate(events):
        r.offset = i
    # the uninterrupted worker
    bs_ref, ref, _ = stack()
    expected = [orjson.loads(v) for _, v in bs_ref.run(events).scores]
    # a worker that wrote outputs up to offset 5 and died before its offset commit:
    # its replacement restarts from an older checkpoint (none here) and replays 0..8
    bs, scorer, registry = stack()
    scorer.emitted[0] = 5
    out = bs.run(events)
    got = [orjson.loads(v) for _, v in out.scores]
    assert [d["source"]["offset"] for d in got] == [6, 7, 8]
    assert got == expected[-3:]  # the replayed events were learned: identical scores after
    assert out.deadletters == []
    assert registry.get_sample_value("pynomaly_events_replayed_skipped_total") == 5
    assert scorer.emitted == {}  # past the mark: the replay is over
    # s0 learned all four of its events, the replayed ones included, as the reference did;
    # its state survives a checkpoint round trip unchanged.
    assert scorer.pipelines["s0"].seen == ref.pipelines["s0"].seen == 4
    clone = pickle.loads(pickle.dumps(scorer.pipelines["s0"]))
    assert clone.process({"value": 11.0}, 1.0) == ref.pipelines["s0"].process({"value": 11.0}, 1.0)
    assert scorer.progress == {0: 8}


def test_forgetting_a_partition_drops_its_marks():
    _, scorer, _ = stack()
    scorer.emitted.update({1: 10, 2: 20})
    scorer.progress.update({1: 11, 2: 21})
    scorer.forget_partitions({1})
    assert scorer.emitted == {2: 20} and scorer.progress == {2: 21}
