"""Scale-out on the real broker: 3 workers share a 12-partition events topic; one leaves and
comes back. Partitions are split, state follows its partitions, nothing is lost."""

from __future__ import annotations

import re
import time
import urllib.request

import orjson
import pytest

from streams.broker import free_port
from tests.support.kafka import checkpointed_offsets, producer, read_all, topic_env, unique
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

STREAMS = 60
LAG_LINE = re.compile(r'pynomaly_consumer_lag_records\{[^}]*partition="(\d+)"[^}]*topic="([^"]+)"')


def assigned(port: int, topic: str) -> set[int]:
    """Events partitions a worker owns, from the per-partition lag series on its /metrics."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as r:
            text = r.read().decode()
    except OSError:
        return set()
    return {int(p) for p, t in LAG_LINE.findall(text) if t == topic}


def wait_for_split(ports: list[int], topic: str, timeout: float = 90.0) -> list[set[int]]:
    deadline = time.monotonic() + timeout
    while True:
        parts = [assigned(p, topic) for p in ports]
        union = set().union(*parts)
        disjoint = sum(len(p) for p in parts) == len(union)
        if union == set(range(12)) and all(parts) and disjoint:
            return parts
        assert time.monotonic() < deadline, f"partitions never split over {len(ports)} workers: {parts}"
        time.sleep(0.5)


def test_three_workers_split_partitions_and_state_follows(kafka_bootstrap, start_worker):
    env = {**topic_env(unique("scale"), partitions=12), "PYNOMALY_CHECKPOINT_INTERVAL_S": "0.5"}
    topic = env["PYNOMALY_TOPIC_EVENTS"]
    ports = [free_port() for _ in range(3)]
    workers = [start_worker(env, web_port=port) for port in ports]
    split = wait_for_split(ports, topic)
    print("3 workers:", [sorted(p) for p in split])

    p = producer(kafka_bootstrap)
    delivered: set[tuple[int, int]] = set()
    phase_of: dict[tuple[int, int], int] = {}

    def publish(phase: int, first: int, count: int) -> None:
        def cb(err, msg):
            assert err is None, err
            delivered.add((msg.partition(), msg.offset()))
            phase_of[(msg.partition(), msg.offset())] = phase
        for i in range(first, first + count):
            for s in range(STREAMS):
                doc = {"stream": f"svc-{s:02d}.rps", "ts": 1_764_151_200 + i, "value": 100 + (i * 7 + s) % 11}
                p.produce(topic, key=doc["stream"], value=orjson.dumps(doc), on_delivery=cb)
            p.poll(0)
        p.flush(30)

    def scored_by_phase() -> dict[int, list[dict]]:
        out: dict[int, list[dict]] = {1: [], 2: [], 3: []}
        for d in read_all(kafka_bootstrap, env["PYNOMALY_TOPIC_SCORES"], expect=len(delivered), timeout=120):
            out[phase_of[(d["source"]["partition"], d["source"]["offset"])]].append(d)
        return out

    publish(1, 0, 80)  # past the 50-event warm-up of every stream
    phase1 = scored_by_phase()[1]
    # The leaving worker's streams must be checkpointed up to their last phase-1 event
    # (polled: a fixed sleep is too short on a loaded machine).
    last: dict[str, int] = {}
    for d in phase1:
        last[d["stream"]] = max(last.get(d["stream"], -1), d["source"]["offset"])
    assert len(last) == STREAMS

    def phase1_checkpointed() -> bool:
        got = checkpointed_offsets(kafka_bootstrap, env)
        return all(got.get(stream, -1) >= o for stream, o in last.items())

    wait_for(phase1_checkpointed, 60, "a checkpoint of every stream covering phase 1", interval=0.5)

    workers[2].stop()  # one leaves: its partitions (and their state) move to the other two
    two = wait_for_split(ports[:2], topic)
    print("2 workers:", [sorted(p) for p in two])
    publish(2, 80, 30)

    workers[2] = start_worker(env, web_port=ports[2])  # it comes back: a new rebalance
    three = wait_for_split(ports, topic)
    print("3 workers again:", [sorted(p) for p in three])
    publish(3, 110, 30)

    by_phase = scored_by_phase()
    seen = {(d["source"]["partition"], d["source"]["offset"]) for ds in by_phase.values() for d in ds}
    assert delivered <= seen, f"{len(delivered - seen)} events never scored"
    for phase in (2, 3):
        rewarmed = [d for d in by_phase[phase] if d["warming_up"]]
        assert not rewarmed, f"phase {phase}: {len(rewarmed)} scores came from re-warming detectors"
    moved = split[2]
    assert any(d["source"]["partition"] in moved for d in by_phase[2])  # its streams kept going
