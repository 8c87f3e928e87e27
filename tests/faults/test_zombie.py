"""Issue 13: a paused ("zombie") worker that resumes after SIGSTOP past its session timeout
must not commit offsets or write state over its successor's.

Worker A scores a first load and is SIGSTOPped; worker B takes its partitions over, scores
a second load and checkpoints. Then A resumes. No event is produced after that, so any
checkpoint or progress mark that goes backwards (a lower offset than the latest one
before the resume) or any committed offset that goes backwards is the zombie's.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from streams.checkpoints import PROGRESS_KEY, load_state, state_key, verify
from streams.settings import load_settings
from tests.faults.support import Load, Tail, committed_offsets, report, size, value_of
from tests.support.kafka import topic_env, unique

pytestmark = pytest.mark.faults

ENV = {**topic_env(unique("zombie")), "PYNOMALY_CHECKPOINT_INTERVAL_S": "1"}
PRESTART = [ENV]


def latest_offsets(bootstrap: str, settings) -> dict[tuple[int, str], int]:
    """(state partition, stream or '#mark') -> events offset its latest record covers."""
    key = state_key(settings)
    assert key is not None
    out: dict[tuple[int, str], int] = {}
    raw = read_raw_keyed_bytes(bootstrap, settings.topic_state)
    for k, partition, value in raw:
        if value is None:
            continue
        if k == PROGRESS_KEY:
            out[(partition, "#mark")] = int(verify(value, key).split()[3])
        else:
            stream = k.decode()
            offset, _, _ = load_state(value, key, settings.topic_events, partition, stream)
            out[(partition, stream)] = offset
    return out


def read_raw_keyed_bytes(bootstrap: str, topic: str):
    from confluent_kafka import Consumer, TopicPartition

    from tests.support.kafka import unique as u

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": u("z"), "enable.auto.commit": False})
    try:
        md = c.list_topics(topic, timeout=10)
        c.assign([TopicPartition(topic, p, 0) for p in md.topics[topic].partitions])
        out, last = [], time.monotonic()
        while time.monotonic() - last < 1.5:
            got = [m for m in c.consume(5000, 0.2) if not m.error()]
            if got:
                last = time.monotonic()
            out.extend((m.key(), m.partition(), m.value()) for m in got)
        return out
    finally:
        c.close()


def test_a_resumed_zombie_writes_nothing_over_its_successor(kafka_bootstrap, start_worker):
    env = ENV
    settings = load_settings(environ={**env, "PYNOMALY_KAFKA_BOOTSTRAP": kafka_bootstrap,
                                      "PYNOMALY_DEV_BROKER": "true"})
    n = size(2_000, 20_000)
    load = Load(kafka_bootstrap, env["PYNOMALY_TOPIC_EVENTS"])
    tail = Tail(kafka_bootstrap, env["PYNOMALY_TOPIC_SCORES"]).start()
    zombie = start_worker(env)
    try:
        for i in range(n):
            load.event(f"z-{i % 20:02d}", i // 20, value_of(i % 20, i // 20))
            if i % 200 == 199:
                time.sleep(0.1)  # ~2,000 events/s: A is mid-work when paused
            if i == n // 2:
                tail.wait(n // 4, 60)
                # paused with streams learned but not checkpointed (interval 1 s)
                os.kill(zombie.proc.pid, signal.SIGSTOP)
        load.flush()
        stopped = time.monotonic()
        start_worker(env, wait_ready=90)
        for i in range(n, 2 * n):
            load.event(f"z-{i % 20:02d}", i // 20, value_of(i % 20, i // 20))
        load.flush()
        tail.wait_cover(load.delivered, 90, env["PYNOMALY_APP_ID"], env["PYNOMALY_TOPIC_EVENTS"],
                        barrier=False)
        time.sleep(3.0)  # B's checkpoints and marks (interval 1 s), and its commits
        before = latest_offsets(kafka_bootstrap, settings)
        committed_before = committed_offsets(kafka_bootstrap, env["PYNOMALY_APP_ID"], env["PYNOMALY_TOPIC_EVENTS"])
        paused_s = time.monotonic() - stopped
        os.kill(zombie.proc.pid, signal.SIGCONT)
        time.sleep(12.0)  # A notices it was fenced out, rejoins; a rebalance may follow
        after = latest_offsets(kafka_bootstrap, settings)
        committed_after = committed_offsets(kafka_bootstrap, env["PYNOMALY_APP_ID"], env["PYNOMALY_TOPIC_EVENTS"])
    finally:
        tail.stop()
        if zombie.proc.poll() is None:
            os.kill(zombie.proc.pid, signal.SIGCONT)
    backwards = {k: (before[k], v) for k, v in after.items() if k in before and v < before[k]}
    commits_back = {p: (committed_before[p], o) for p, o in committed_after.items()
                    if p in committed_before and o < committed_before[p]}
    report("zombie", events=2 * n, paused_s=f"{paused_s:.1f}", state_keys=len(after),
           state_backwards=len(backwards), commits_backwards=len(commits_back))
    assert not backwards, f"the zombie wrote older state over its successor's: {sorted(backwards.items())[:5]}"
    assert not commits_back, f"committed offsets went backwards: {commits_back}"
    assert tail.count >= 2 * n
