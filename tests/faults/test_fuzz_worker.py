"""Fuzzed records through a live worker: each is scored or dead-lettered, none is lost,
the worker stays up and its memory stays bounded.

Every delivered input offset must appear as the ``source`` of a scored or a dead-letter
record (forwarded events keep their original source). 1,000 records by default, 5,000 with
PYNOMALY_FAULTS_FULL=1; a few of them are ~1 MB.
"""

from __future__ import annotations

import random
import time

import orjson
import pytest

from tests.faults import fuzzgen
from tests.faults.support import Load, Tail, metric, report, rss_kib, scrape, size
from tests.support.kafka import topic_env, unique

pytestmark = pytest.mark.faults

ENV = topic_env(unique("fuzz"))
PRESTART = [ENV]  # started ahead by tests/faults/conftest.py

RSS_LIMIT_KIB = 700 * 1024


def test_fuzzed_records_are_scored_or_deadlettered(kafka_bootstrap, start_worker):
    app_env = ENV
    n = size(1_000, 5_000)
    worker = start_worker(app_env)
    pid = worker.proc.pid
    rss_start = rss_kib(pid)
    scores = Tail(kafka_bootstrap, app_env["PYNOMALY_TOPIC_SCORES"])
    scores.keep_values = True
    scores.start()
    dead = Tail(kafka_bootstrap, app_env["PYNOMALY_TOPIC_DEADLETTER"]).start()
    # A valid forged _origin makes the scored record name the forged source instead of
    # the record's own offset (docs/security.md): those records are accounted separately.
    load = Load(kafka_bootstrap, app_env["PYNOMALY_TOPIC_EVENTS"], mark=lambda v: b'"_origin"' in v)
    rng = random.Random(11)
    rss_peak = rss_start
    try:
        for i, (key, value) in enumerate(fuzzgen.records(rng, n, huge_every=500)):
            load.send(key, value)
            if i % 250 == 0:
                rss_peak = max(rss_peak, rss_kib(pid))
        load.flush()
        assert len(load.delivered) == n
        for _ in range(300):
            if load.delivered - load.marked <= set(scores.sources) | set(dead.sources):
                break
            rss_peak = max(rss_peak, rss_kib(pid))
            time.sleep(0.2)
        rss_end = rss_kib(pid)
        text = scrape(int(worker.env["PYNOMALY_WEB_PORT"]))
    finally:
        scores.stop()
        dead.stop()
    covered = set(scores.sources) | set(dead.sources)
    missing = load.delivered - covered
    topic = app_env["PYNOMALY_TOPIC_EVENTS"]
    forged = sum(orjson.loads(v)["source"]["topic"] != topic for v in scores.values)
    report("fuzz-worker", records=n, scored=scores.count, deadlettered=dead.count,
           rss_start_mib=rss_start // 1024, rss_peak_mib=rss_peak // 1024,
           rss_end_mib=rss_end // 1024, forged_origin_records=len(load.marked),
           scored_under_forged_source=forged)
    assert worker.proc.poll() is None, f"the worker died:\n{worker.log()[-3000:]}"
    assert missing <= load.marked, f"{len(missing - load.marked)} fuzzed records vanished, " \
        f"e.g. {sorted(missing - load.marked)[:5]}"
    assert len(missing) <= forged, "a forged-origin record was neither scored nor dead-lettered"
    assert rss_peak < RSS_LIMIT_KIB, f"RSS peaked at {rss_peak // 1024} MiB"
    assert metric(text, "pynomaly_events_deadlettered_total", 'reason="not_json"') > 0
    assert metric(text, "pynomaly_events_deadlettered_total", 'reason="oversized"') > 0
    assert "Traceback" not in worker.log()
