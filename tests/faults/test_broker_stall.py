"""The broker frozen (SIGSTOP) for a while, then resumed: the worker recovers by itself.

A dedicated embedded broker (the session one is shared). Events are produced before,
during (buffered by the producer) and after the stall; every one must be scored by the
same worker process, which must neither exit nor need a restart.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from streams.broker import EmbeddedBroker, free_port
from tests.faults.support import Load, Tail, check_ledger, committed_offsets, report, size, value_of
from tests.support.kafka import WorkerProcess, topic_env, unique

pytestmark = pytest.mark.faults


def produce(load: Load, start: int, n: int, streams: int = 50) -> None:
    for i in range(start, start + n):
        s = i % streams
        load.event(f"stall-{s:02d}", i // streams, value_of(s, i // streams))


def test_worker_recovers_from_a_stopped_broker(tmp_path: Path):
    stall_s = size(5, 30)
    per_phase = size(1_000, 2_000)
    t0 = time.monotonic()
    broker = EmbeddedBroker().start()
    broker_s = time.monotonic() - t0
    env = topic_env(unique("stall"))
    worker = WorkerProcess(broker.bootstrap, env, tmp_path, free_port())
    tail: Tail | None = None
    try:
        worker.start(60)
        ready_s = time.monotonic() - t0 - broker_s
        pid = worker.proc.pid
        load = Load(broker.bootstrap, env["PYNOMALY_TOPIC_EVENTS"])
        tail = Tail(broker.bootstrap, env["PYNOMALY_TOPIC_SCORES"]).start()
        produce(load, 0, per_phase)
        load.flush()
        tail.wait(per_phase, timeout=60)
        # Outputs of offsets from these on may be written twice (retried across the stall).
        committed = committed_offsets(broker.bootstrap, env["PYNOMALY_APP_ID"], env["PYNOMALY_TOPIC_EVENTS"])

        os.kill(broker.proc.pid, signal.SIGSTOP)
        stopped = time.monotonic()
        during = threading.Thread(target=produce, args=(load, per_phase, per_phase))
        during.start()  # buffered in the producer until the broker answers again
        time.sleep(stall_s)
        os.kill(broker.proc.pid, signal.SIGCONT)
        resumed = time.monotonic()
        during.join()
        produce(load, 2 * per_phase, per_phase)
        load.flush(120)
        before = tail.count
        first_new = None
        deadline = resumed + 120
        while time.monotonic() < deadline and not (load.delivered <= set(tail.sources)):
            if first_new is None and tail.count > before:
                first_new = time.monotonic()
            time.sleep(0.05)
        all_scored = time.monotonic()
        missing = load.delivered - set(tail.sources)
        alive = worker.proc.poll() is None and worker.proc.pid == pid
        report("broker-stall", stall_s=stall_s, events=3 * per_phase,
               first_score_after_resume_s=f"{(first_new or all_scored) - resumed:.1f}",
               all_scored_after_resume_s=f"{all_scored - resumed:.1f}",
               duplicates=tail.count - len(set(tail.sources)), stopped_for_s=f"{resumed - stopped:.1f}",
               broker_start_s=f"{broker_s:.1f}", worker_ready_s=f"{ready_s:.1f}")
        assert alive, f"the worker exited during the stall:\n{worker.log()[-3000:]}"
        assert not missing, f"{len(missing)} events never scored, e.g. {sorted(missing)[:5]}"
        assert "We experienced a crash" not in worker.log()
        report("broker-stall-ledger", **check_ledger(
            load.delivered, tail.sources, lambda o: o[1] >= committed.get(o[0], 0)))
    finally:
        if tail is not None:
            tail.stop()
        if broker.proc is not None and broker.proc.poll() is None:
            os.kill(broker.proc.pid, signal.SIGCONT)
        worker.stop()
        broker.stop()
