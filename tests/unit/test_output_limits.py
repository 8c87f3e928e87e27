"""Issue 13, finding 1: no input record can make an output the producer rejects.

Keys count against ``max_record_bytes``; dead letters carry at most a bounded prefix of the
key and raw value; a rejected array record gives one dead letter (with a count), not one
per element; an output still over the producer's request size is dead-lettered truncated.
"""

import base64

import orjson
from prometheus_client import CollectorRegistry

from streams.codec import DeadLetter, decode_record, encode_deadletter
from streams.metrics import Metrics
from streams.scoring import BatchScorer, RawRecord, StreamScorer, default_pipeline_factory
from streams.settings import load_settings

LIMIT = 200_000  # the producer's max request size in these tests


def dec(value, key=b"s1", max_bytes=100_000, max_events=10_000):
    return decode_record(key, value, 1_764_151_200_000, "events", 3, 42, max_bytes, max_events)


def scorer(**overrides):
    settings = load_settings(environ={}, producer_max_request_bytes=LIMIT, **overrides)
    registry = CollectorRegistry()
    bs = BatchScorer(settings, StreamScorer(default_pipeline_factory(settings)), Metrics(registry),
                     clock=lambda: 2e9)
    return bs, registry


def all_outputs(out):
    return out.scores + out.anomalies + out.deadletters + out.forwards


def test_the_key_counts_against_max_record_bytes():
    [dl] = dec(b"{}", key=b"k" * 150_000)
    assert isinstance(dl, DeadLetter) and dl.reason == "oversized"
    assert "key" in dl.message


def test_a_dead_letter_keeps_only_a_prefix_of_a_huge_key():
    [dl] = dec(b"{}", key=b"k" * 700_000, max_bytes=1_000_000)
    encoded = encode_deadletter(dl)
    doc = orjson.loads(encoded)
    assert len(encoded) < 100_000  # was 1.6 MB for a 700 KB key (the figure)
    assert doc["key_bytes"] == 700_000 and doc["key_truncated"]
    assert base64.b64decode(doc["key_b64"]) == b"k" * len(base64.b64decode(doc["key_b64"]))


def test_an_array_of_rejected_events_gives_one_dead_letter_with_a_count():
    raw = orjson.dumps([{}] * 2000)
    items = dec(raw, key=b"k" * 30_000)
    dls = [i for i in items if isinstance(i, DeadLetter)]
    assert len(dls) == 1, f"{len(dls)} dead letters for one record"
    doc = orjson.loads(encode_deadletter(dls[0]))
    assert doc["events"] == 2000 and doc["reasons"] == {"missing_stream": 2000}
    assert doc["source"]["index"] == 0
    assert len(encode_deadletter(dls[0])) < 20 * len(raw)


def test_valid_events_of_a_partly_rejected_array_are_still_scored():
    items = dec(b'[{"stream":"s1","value":1},{"stream":"s1"},{"stream":"s1","value":3},{"value":2}]')
    assert [type(i).__name__ for i in items] == ["Event", "DeadLetter", "Event"]
    assert items[1].count == 2 and items[1].reasons == {"missing_value": 1, "missing_stream": 1}
    assert items[1].source.index == 1


def test_the_dead_letter_metric_counts_every_rejected_event_of_an_array():
    bs, registry = scorer()
    out = bs.run([RawRecord(b"k", orjson.dumps([{}] * 50), 1_000, "ev", 0, 7)])
    assert len(out.deadletters) == 1
    assert registry.get_sample_value("pynomaly_events_deadlettered_total",
                                     {"reason": "missing_stream"}) == 50


def test_no_output_exceeds_the_producer_request_size():
    bs, registry = scorer(max_record_bytes=1_000_000)
    big_tags = {f"t{i}": "v" * 200 for i in range(1200)}  # ~250 KB event, scored > LIMIT
    big = orjson.dumps({"stream": "s1", "ts": 1000, "value": 1.0, "tags": big_tags})
    assert LIMIT < len(big) < 1_000_000
    records = [
        RawRecord(b"s1", orjson.dumps({"stream": "s1", "ts": 999, "value": 1.0}), 1_000, "ev", 0, 1),
        RawRecord(b"k" * 700_000, b"{}", 1_000, "ev", 0, 2),
        RawRecord(b"s1", big, 1_000, "ev", 0, 3),
        RawRecord(None, big, 1_000, "ev", 0, 4),  # would be forwarded
        RawRecord(b"k" * 30_000, orjson.dumps([{}] * 2000), 1_000, "ev", 0, 5),
    ]
    out = bs.run(records)
    sizes = [len(k or b"") + len(v) for k, v in all_outputs(out)]
    assert max(sizes) < LIMIT - 1024, sorted(sizes)[-3:]
    reasons = [orjson.loads(v)["reason"] for _, v in out.deadletters]
    assert reasons.count("output_too_large") == 2
    assert sorted(orjson.loads(v)["source"]["offset"] for _, v in out.deadletters) == [2, 3, 4, 5]
    assert [orjson.loads(v)["source"]["offset"] for _, v in out.scores] == [1]
    assert registry.get_sample_value("pynomaly_events_deadlettered_total",
                                     {"reason": "output_too_large"}) == 2


def test_a_dead_letter_record_key_is_bounded():
    bs, _ = scorer()
    out = bs.run([RawRecord(b"k" * 150_000, b"not json", 1_000, "ev", 0, 2)])
    [(key, _)] = out.deadletters
    assert key is not None and len(key) <= 1024
