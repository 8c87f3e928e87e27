import base64

import orjson
import pytest

from detectors.protocol import Verdict
from streams.codec import (
    REASONS,
    DeadLetter,
    Event,
    decode_record,
    encode_deadletter,
    encode_forward,
    encode_scored,
)


def dec(value, key=b"s1", ts_ms=1_764_151_200_000, max_bytes=10_000, max_events=100):
    return decode_record(key, value, ts_ms, "events", 3, 42, max_bytes, max_events)


def one(value, **kw):
    items = dec(value, **kw)
    assert len(items) == 1
    return items[0]


def test_valid_univariate_with_rfc3339_ts():
    ev = one(b'{"stream":"s1","ts":"2026-11-26T10:00:00Z","value":0.73,"tags":{"region":"eu"}}')
    assert isinstance(ev, Event)
    assert ev.stream == "s1" and ev.features == {"value": 0.73} and not ev.multivariate
    assert ev.ts == 1795687200.0
    assert ev.tags == {"region": "eu"}
    assert (ev.source.topic, ev.source.partition, ev.source.offset) == ("events", 3, 42)
    assert not ev.forward


def test_unix_seconds_and_record_timestamp_fallback():
    assert one(b'{"stream":"s1","ts":1764151200.5,"value":1}').ts == 1764151200.5
    assert one(b'{"stream":"s1","value":1}').ts == 1_764_151_200.0


def test_multivariate():
    ev = one(b'{"stream":"s1","values":{"cpu":0.7,"mem":0.4}}')
    assert ev.multivariate and ev.features == {"cpu": 0.7, "mem": 0.4}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json", "not_json"),
        (b"\xff\xfe{}", "not_json"),
        (b'{"stream":"s1","value":1e400}', "not_json"),
        (b"NaN", "not_json"),
        (b"[" * 3000, "not_json"),
        (b'"a string"', "not_object"),
        (b"42", "not_object"),
        (b"[1, 2, 3]", "not_object"),
        (b'{"value":1}', "missing_stream"),
        (b'{"stream":"","value":1}', "bad_stream"),
        (b'{"stream":7,"value":1}', "bad_stream"),
        (b'{"stream":"s1"}', "missing_value"),
        (b'{"stream":"s1","value":"1.0"}', "bad_value"),
        (b'{"stream":"s1","value":true}', "bad_value"),
        (b'{"stream":"s1","value":null}', "bad_value"),
        (b'{"stream":"s1","values":{}}', "bad_value"),
        (b'{"stream":"s1","values":{"a":"x"}}', "bad_value"),
        (b'{"stream":"s1","value":1,"ts":"yesterday"}', "bad_ts"),
        (b'{"stream":"s1","value":1,"ts":1764151200000}', "bad_ts"),
        (b'{"stream":"s1","value":1,"ts":-5}', "bad_ts"),
        (b'{"stream":"s1","value":1,"ts":[1]}', "bad_ts"),
        (b'{"stream":"s1","value":1,"tags":{"a":1}}', "bad_tags"),
        (b'{"stream":"s1","value":1,"tags":"eu"}', "bad_tags"),
        (b"", "empty"),
        (None, "empty"),
        (b"[]", "empty"),
    ],
)
def test_every_bad_input_is_dead_lettered_with_a_reason(raw, reason):
    dl = one(raw)
    assert isinstance(dl, DeadLetter)
    assert dl.reason == reason and reason in REASONS
    assert dl.message
    doc = orjson.loads(encode_deadletter(dl))
    assert doc["reason"] == reason
    assert doc["source"] == {"topic": "events", "partition": 3, "offset": 42}
    if raw:
        assert base64.b64decode(doc["raw_b64"]) == raw


def test_oversized_record_is_dead_lettered_and_truncated():
    raw = b'{"stream":"s1","value":1,"pad":"' + b"x" * 200_000 + b'"}'
    dl = one(raw, max_bytes=100_000)
    assert dl.reason == "oversized"
    doc = orjson.loads(encode_deadletter(dl))
    assert doc["raw_truncated"] and doc["raw_bytes"] == len(raw)
    assert len(base64.b64decode(doc["raw_b64"])) < len(raw)


def test_array_records_decode_per_element_with_indices():
    items = dec(b'[{"stream":"s1","value":1},{"stream":"s1"},{"stream":"s1","value":3}]')
    assert [type(i).__name__ for i in items] == ["Event", "DeadLetter", "Event"]
    assert [i.source.index for i in items] == [0, 1, 2]
    assert items[1].reason == "missing_value"


def test_too_many_events_in_one_record():
    raw = orjson.dumps([{"stream": "s1", "value": i} for i in range(5)])
    assert one(raw, max_events=4).reason == "too_many_events"


def test_keyless_or_mismatched_key_events_are_forwarded_with_their_origin():
    ev = one(b'{"stream":"s9","value":2}', key=None)
    assert ev.forward
    fwd = orjson.loads(encode_forward(ev))
    assert fwd["_origin"] == {"topic": "events", "partition": 3, "offset": 42}
    # The forwarded copy, read back from its new partition, names the original source.
    again = decode_record(b"s9", encode_forward(ev), 0, "events", 0, 7, 10_000, 10)[0]
    assert isinstance(again, Event) and not again.forward
    assert (again.source.partition, again.source.offset) == (3, 42)
    assert one(b'{"stream":"other","value":2}', key=b"s1").forward


def test_scored_record_carries_the_contract_fields():
    ev = one(b'{"stream":"s1","ts":5,"value":2.5}')
    v = Verdict(0.9995, 0.999, True, "warning", False, "zscore", 1)
    doc = orjson.loads(encode_scored(ev, v))
    assert doc["stream"] == "s1" and doc["ts"] == 5 and doc["value"] == 2.5
    for k in ("score", "threshold", "is_anomaly", "severity", "warming_up", "detector", "version"):
        assert k in doc
    assert doc["source"] == {"topic": "events", "partition": 3, "offset": 42}


def test_docs_dead_letter_table_lists_every_reason():
    """docs/events.md's table of dead-letter reasons names every reason the codec can give."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "events.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    documented = {name for row in rows for name in re.findall(r"`(\w+)`", row.split("|")[1])}
    assert set(REASONS) <= documented, f"undocumented: {sorted(set(REASONS) - documented)}"
