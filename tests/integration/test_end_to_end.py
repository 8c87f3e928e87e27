"""A worker subprocess on the real broker: every valid event scored once, bad ones dead-lettered."""

from __future__ import annotations

import random
from collections import Counter

import orjson
import pytest

from tests.support.kafka import producer, read_all

pytestmark = pytest.mark.integration

MALFORMED = [
    (b"bad", b"this is not json"),
    (None, b'{"stream": "x", "value": "high"}'),
    (b"bad", b'{"value": 3.0}'),
    (b"bad", b'{"stream": "bad"}'),
    (b"bad", b'{"stream": "bad", "value": 1, "ts": "last tuesday"}'),
    (b"bad", b"[1, 2, 3]"),
    (b"bad", b'"just a string"'),
    (b"bad", b'{"stream": "bad", "value": 1e999}'),
    (b"bad", b"\xff\xfe\xfd"),
    (b"bad", b""),
]
REASONS = ["not_json", "bad_value", "missing_stream", "missing_value", "bad_ts", "not_object",
           "not_object", "not_json", "not_json", "empty"]


def make_events(n_streams: int = 20, per_stream: int = 100, seed: int = 11):
    rng = random.Random(seed)
    events, spikes = [], set()
    for i in range(per_stream):
        for s in range(n_streams):
            stream = f"host-{s:02d}.cpu"
            value = 50 + rng.gauss(0, 2)
            # One spike per stream after warm-up (half the streams at 60, half at 85).
            if i == (60 if s % 2 == 0 else 85):
                value += 40
                spikes.add((stream, 1_764_151_200 + i))
            events.append({"stream": stream, "ts": 1_764_151_200 + i, "value": round(value, 3)})
    return events, spikes


def test_every_valid_event_scored_once_and_malformed_dead_lettered(kafka_bootstrap, app_env, start_worker):
    start_worker(app_env)
    events, spikes = make_events()
    p = producer(kafka_bootstrap)
    topic = app_env["PYNOMALY_TOPIC_EVENTS"]
    delivered: list[tuple[int, int]] = []
    bad_offsets: list[tuple[int, int]] = []

    def on_delivery(target):
        def cb(err, msg):
            assert err is None, err
            target.append((msg.partition(), msg.offset()))
        return cb

    for j, ev in enumerate(events):
        p.produce(topic, key=ev["stream"], value=orjson.dumps(ev), on_delivery=on_delivery(delivered))
        if j % 40 == 0 and len(bad_offsets) < 50:
            key, value = MALFORMED[(j // 40) % len(MALFORMED)]
            p.produce(topic, key=key, value=value, on_delivery=on_delivery(bad_offsets))
    p.flush(30)
    assert len(delivered) == 2000 and len(bad_offsets) == 50

    scores = read_all(kafka_bootstrap, app_env["PYNOMALY_TOPIC_SCORES"], expect=2000, timeout=90)
    sources = Counter((d["source"]["partition"], d["source"]["offset"]) for d in scores)
    assert len(scores) == 2000, f"expected exactly 2000 scored records, got {len(scores)}"
    assert set(sources) == set(delivered)
    assert max(sources.values()) == 1
    for d in scores:
        assert 0.0 <= d["score"] <= 1.0
        assert {"stream", "ts", "value", "threshold", "is_anomaly", "severity", "detector", "version"} <= d.keys()

    dead = read_all(kafka_bootstrap, app_env["PYNOMALY_TOPIC_DEADLETTER"], expect=50, timeout=30)
    assert len(dead) == 50
    assert {(d["source"]["partition"], d["source"]["offset"]) for d in dead} == set(bad_offsets)
    assert Counter(d["reason"] for d in dead) == Counter(REASONS[k % len(REASONS)] for k in range(50))
    assert all(d["message"] for d in dead)

    anomalies = read_all(kafka_bootstrap, app_env["PYNOMALY_TOPIC_ANOMALIES"], timeout=15, idle=2)
    found = {(a["stream"], a["ts"]) for a in anomalies}
    assert spikes <= found, f"missed spikes: {sorted(spikes - found)[:5]}"
    # Few false positives on quiet series: at most 2% of the 1,000 events scored after warm-up.
    assert len(anomalies) <= len(spikes) + 20
