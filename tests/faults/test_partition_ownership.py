"""Issue 13, finding 2: a stream arriving on two partitions is never silently dropped.

The issue's check, from outside: 100 events of stream ``split-1`` with every second one
produced to another partition than its key's (86 of them were neither scored nor
dead-lettered on main), and streams produced by two partitioners at once (librdkafka's
default crc32 beside murmur2). The ledger over the run: every input offset has exactly one
scored record or dead letter (no kill: no duplicates at all).
"""

from __future__ import annotations

import orjson
import pytest
from confluent_kafka import Producer

from tests.faults.support import T0, Load, Tail, check_ledger, metric, report, scrape, size
from tests.support.kafka import topic_env, unique

pytestmark = pytest.mark.faults

PARTITIONS = 4
ENV = topic_env(unique("owner"), partitions=PARTITIONS)
PRESTART = [ENV]


def test_streams_on_two_partitions_are_scored_and_counted(kafka_bootstrap, start_worker):
    n_split = size(100, 1_000)
    worker = start_worker(ENV)
    topic = ENV["PYNOMALY_TOPIC_EVENTS"]
    scores = Tail(kafka_bootstrap, ENV["PYNOMALY_TOPIC_SCORES"]).start()
    dead = Tail(kafka_bootstrap, ENV["PYNOMALY_TOPIC_DEADLETTER"]).start()
    load = Load(kafka_bootstrap, topic)  # murmur2, as Faust and aiokafka
    crc = Load(kafka_bootstrap, topic)
    # librdkafka's default partitioner (consistent_random: crc32), as a confluent-kafka
    # producer left at its defaults
    crc.p = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 5})
    try:
        for i in range(2_000):
            load.event(f"ordinary-{i % 8}", i, 10.0 + i % 5)
        load.flush()
        # split-1's home partition (murmur2 of its key), and the partition with the lowest
        # offsets besides it: on main its events there looked like replays of the home's.
        homes: list[int] = []

        def first(err, msg):
            load._cb(err, msg)
            homes.append(msg.partition())

        load.p.produce(topic, key=b"split-1", on_delivery=first,
                       value=orjson.dumps({"stream": "split-1", "ts": T0, "value": 10.0}))
        load.flush()
        home = homes[0]
        ends = {p: max((o for q, o in load.delivered if q == p), default=-1) for p in range(PARTITIONS)}
        # the partition whose offsets differ most from the home partition's
        other = max((p for p in range(PARTITIONS) if p != home), key=lambda p: abs(ends[p] - ends[home]))
        assert abs(ends[other] - ends[home]) > n_split, ends
        for i in range(1, n_split):
            doc = orjson.dumps({"stream": "split-1", "ts": T0 + i, "value": 10.0 + i % 3})
            if i % 2:
                load.p.produce(topic, key=b"split-1", value=doc, partition=other, on_delivery=load._cb)
            else:
                load.send(b"split-1", doc)
            load.flush()  # one by one, as a live producer: each fetch holds one or two
        for i in range(size(400, 4_000)):  # the same streams by two partitioners
            stream = f"mixed-{(i // 2) % 16}"
            (crc if i % 2 else load).event(stream, i // 32, 10.0 + i % 4)
            if i % 8 == 7:
                load.flush()
                crc.flush()
        load.flush()
        crc.flush()
        delivered = load.delivered | crc.delivered
        scores.wait_cover(delivered, 90, ENV["PYNOMALY_APP_ID"], ENV["PYNOMALY_TOPIC_EVENTS"], barrier=False)
        assert worker.proc.poll() is None, f"the worker died:\n{worker.log()[-3000:]}"
        text = scrape(int(worker.env["PYNOMALY_WEB_PORT"]))
    finally:
        scores.stop()
        dead.stop()
    figures = check_ledger(delivered, scores.sources + dead.sources)
    violations = metric(text, "pynomaly_partition_ownership_violations_total")
    report("partition-ownership", split_events=n_split, other_partition=other, home=home,
           violations=violations, **figures)
    assert violations >= n_split // 2 - 1
    assert metric(text, "pynomaly_events_replayed_skipped_total") == 0

