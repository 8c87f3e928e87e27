"""The codec under hostile input: decode_record never raises, nothing vanishes.

Every record yields at least one item; each item is an Event with finite features or a
DeadLetter with a known reason and a message; both encode to JSON. 10^5 generated records
by default, 10^6 with PYNOMALY_FAULTS_FULL=1, plus hypothesis over arbitrary JSON and bytes.
"""

from __future__ import annotations

import math
import random
import time

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors.protocol import Verdict
from streams.codec import REASONS, DeadLetter, Event, decode_record, encode_deadletter, encode_scored
from tests.faults import fuzzgen
from tests.faults.support import report, size

pytestmark = pytest.mark.faults

MAX_BYTES = 1_000_000
MAX_EVENTS = 10_000
VERDICT = Verdict(score=0.5, threshold=0.999, is_anomaly=False, severity="none", warming_up=True,
                  detector="zscore", version=1)


def check(key: bytes | None, value: bytes | None, offset: int) -> tuple[int, int]:
    items = decode_record(key, value, 1_790_000_000_000, "fuzz", 0, offset, MAX_BYTES, MAX_EVENTS)
    assert items, f"record {offset} vanished: {value[:80]!r}"
    events = dead = 0
    for item in items:
        if item.source.topic == "fuzz":  # else a valid forged _origin replaced the source
            assert item.source.offset == offset
        if isinstance(item, DeadLetter):
            assert item.reason in REASONS and item.message
            doc = orjson.loads(encode_deadletter(item))
            assert doc["reason"] == item.reason
            assert len(doc["raw_b64"] or "") <= 4 * 64 * 1024 // 3 + 4
            dead += 1
        else:
            assert isinstance(item, Event)
            assert item.stream and len(item.stream) <= 256
            assert all(math.isfinite(v) for v in item.features.values())
            assert math.isfinite(item.ts)
            orjson.loads(encode_scored(item, VERDICT))
            events += 1
    return events, dead


def test_generated_hostile_records_never_raise():
    n = size(30_000, 1_000_000)
    rng = random.Random(20261127)
    started = time.perf_counter()
    events = dead = 0
    for offset, (key, value) in enumerate(fuzzgen.records(rng, n, huge_every=5_000)):
        e, d = check(key, value, offset)
        events += e
        dead += d
    elapsed = time.perf_counter() - started
    report("fuzz-codec", records=n, events=events, deadletters=dead, seconds=f"{elapsed:.1f}")
    assert events > n // 10 and dead > n // 2  # both paths were exercised


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40),
    lambda kids: st.lists(kids, max_size=5) | st.dictionaries(st.text(max_size=10), kids, max_size=5),
    max_leaves=30,
)
event_like = st.fixed_dictionaries(
    {}, optional={"stream": json_values | st.text(max_size=300), "value": json_values,
                  "values": json_values, "ts": json_values | st.text(max_size=40),
                  "tags": json_values, "_origin": json_values},
)


@settings(max_examples=size(150, 5_000), deadline=None, suppress_health_check=list(HealthCheck))
@given(doc=st.one_of(event_like, st.lists(event_like, max_size=4), json_values),
       key=st.none() | st.binary(max_size=20))
def test_hypothesis_json_documents(doc, key):
    check(key, orjson.dumps(doc), 1)


@settings(max_examples=size(150, 5_000), deadline=None, suppress_health_check=list(HealthCheck))
@given(value=st.none() | st.binary(max_size=2_000), key=st.none() | st.binary(max_size=20))
def test_hypothesis_arbitrary_bytes(value, key):
    check(key, value, 2)


@pytest.mark.parametrize("marker", [
    {"topic": "t", "partition": 1e300, "offset": 1},
    {"topic": "t", "partition": 0, "offset": "9" * 30},
    {"topic": "t", "partition": 0, "offset": 2**64 - 1},
    {"topic": "t", "partition": -1, "offset": 1},
    {"topic": "t", "partition": 0, "offset": 1, "index": -1e20},
], ids=["huge-partition", "huge-offset-text", "offset-2^64", "negative-partition", "huge-index"])
def test_forged_origin_with_out_of_range_integers_is_dead_lettered(marker):
    """Once a poison pill: the event decoded, then encoding its scored record raised."""
    value = orjson.dumps({"stream": "a", "value": 1.0, "_origin": marker})
    items = decode_record(b"a", value, 0, "ev", 0, 1, MAX_BYTES, MAX_EVENTS)
    assert [getattr(i, "reason", None) for i in items] == ["bad_origin"]
    check(b"a", value, 1)
