"""Many distinct stream keys: memory is bounded by ``max_streams_in_memory``.

A producer sends ever new keys (one event each); the worker keeps at most the cap in
memory, evicts the rest to the checkpoint topic and counts them. Then some of the first
keys return: their state is read back (they are past warm-up, which a fresh detector
would not be) while new keys keep arriving. CI: 10,000 keys, cap 1,000;
PYNOMALY_FAULTS_FULL=1: 10^6 keys, cap 20,000 (10^7 keys would hold ~30 GB of evicted
state in the embedded broker's memory: run that against a real Kafka cluster).
"""

from __future__ import annotations

import time

import orjson
import pytest

from tests.faults.support import FULL, Load, Tail, metric, report, rss_kib, scrape, size
from tests.support.kafka import topic_env, unique
from tests.support.waiting import wait_for

pytestmark = pytest.mark.faults

CAP = size(1_000, 20_000)
ENV = {**topic_env(unique("keys")), "PYNOMALY_MAX_STREAMS_IN_MEMORY": str(CAP),
       "PYNOMALY_WARMUP_EVENTS": "1"}
PRESTART = [ENV]  # started ahead by tests/faults/conftest.py


def test_distinct_keys_stay_under_the_cap(kafka_bootstrap, start_worker):
    n_keys = size(10_000, 1_000_000)
    n_back = size(500, 10_000)  # first keys that send a second event
    app_env = ENV
    worker = start_worker(ENV)
    port = int(worker.env["PYNOMALY_WEB_PORT"])
    pid = worker.proc.pid
    rss_start = rss_kib(pid)
    rss_peak = rss_start
    load = Load(kafka_bootstrap, app_env["PYNOMALY_TOPIC_EVENTS"])
    tail = Tail(kafka_bootstrap, app_env["PYNOMALY_TOPIC_SCORES"]).start()
    tail.keep_values = True
    started = time.monotonic()

    def send(i: int, ts: int) -> None:
        stream = f"key-{i:08d}"
        load.send(stream, orjson.dumps({"stream": stream, "ts": ts, "value": 1.0 + i % 3}))

    try:
        for i in range(n_keys):
            send(i, 1_790_000_000 + i)
            if i % 5_000 == 4_999:
                rss_peak = max(rss_peak, rss_kib(pid))
        load.flush(300)
        tail.wait(n_keys, timeout=size(120, 3_600), alive=worker_alive(worker))
        filled_s = time.monotonic() - started
        # The first keys return (long evicted), interleaved with as many new ones.
        for j in range(n_back):
            send(j, 1_790_000_000 + n_keys + j)
            send(n_keys + j, 1_790_000_000 + n_keys + j)
        load.flush(120)
        tail.wait(n_keys + 2 * n_back, timeout=size(60, 600), alive=worker_alive(worker))
        rss_peak = max(rss_peak, rss_kib(pid))
        # The last batch's evictions and restores are counted once its outputs are
        # acknowledged, just after the tail saw them: poll the metrics for them.
        want_evicted = n_keys + n_back - CAP

        def counted() -> str | None:
            text = scrape(port)
            return text if (metric(text, "pynomaly_streams_evicted_total") >= want_evicted
                            and metric(text, "pynomaly_checkpoint_restores_total", 'outcome="ok"') >= n_back
                            and metric(text, "pynomaly_events_scored_total") >= n_keys + 2 * n_back) else None

        text = wait_for(counted, 30, f"{want_evicted} evictions, {n_back} restores and every event "
                                     "scored in the worker's metrics", interval=0.2)
    finally:
        tail.stop()
    total_s = time.monotonic() - started
    returned = [d for d in map(orjson.loads, tail.values[n_keys:])
                if int(d["stream"][4:]) < n_back]
    rewarmed = sum(d["warming_up"] for d in returned)
    active = metric(text, "pynomaly_active_streams")
    evicted = metric(text, "pynomaly_streams_evicted_total")
    restored = metric(text, "pynomaly_checkpoint_restores_total", 'outcome="ok"')
    report("key-explosion", full=FULL, keys=n_keys + n_back, cap=CAP, returning=n_back,
           active_streams=active, evicted=evicted, restored=restored, rewarmed=rewarmed,
           rss_start_mib=rss_start // 1024, rss_peak_mib=rss_peak // 1024,
           scored=tail.count, fill_s=f"{filled_s:.1f}", total_s=f"{total_s:.1f}",
           # restore_for logs each batch whose evicted streams took > 1 s to read back
           slow_restores=worker.log().count("evicted streams in"),
           keys_per_s=f"{(n_keys + 2 * n_back) / total_s:.0f}")
    assert worker.proc.poll() is None
    assert active <= CAP, f"{active:.0f} streams in memory, cap {CAP}"
    assert evicted >= n_keys + n_back - CAP
    assert len(returned) == n_back
    assert rewarmed == 0, f"{rewarmed} of {n_back} returning streams started over"
    assert restored >= n_back
    # Memory: the cap's pipelines plus ~120 B of index per evicted stream, not ~6 KiB per key.
    assert (rss_peak - rss_start) * 1024 < CAP * 16_384 + n_keys * 1_024 + 64 * 2**20


def worker_alive(worker):
    def check() -> None:
        assert worker.proc.poll() is None, f"worker exited:\n{worker.log()[-3000:]}"
    return check
