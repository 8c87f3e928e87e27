"""Issue 13, finding 1: large keys, amplifying arrays and outputs over the producer's max
request size never fail a batch.

The embedded broker does not enforce Kafka's 1 MiB record limit, so the worker's own
producer enforces one (``PYNOMALY_PRODUCER_MAX_REQUEST_BYTES``, aiokafka's
``max_request_size``): an output over it raises in the producer as it would on the
broker. On main a 700 KB key gave a 1.6 MB dead letter, the batch raised and the worker
exited; an array of 2,000 ``{}`` gave 2,000 dead letters.
"""

from __future__ import annotations

import orjson
import pytest

from tests.faults.support import T0, Load, Tail, metric, read_raw_keyed, report, scrape
from tests.support.kafka import topic_env, unique

pytestmark = pytest.mark.faults

LIMIT = 200_000
ENV = {**topic_env(unique("big"), partitions=2), "PYNOMALY_PRODUCER_MAX_REQUEST_BYTES": str(LIMIT)}
PRESTART = [ENV]


def test_large_keys_arrays_and_outputs_are_dead_lettered_within_the_size_limit(
        kafka_bootstrap, start_worker):
    worker = start_worker(ENV)
    scores = Tail(kafka_bootstrap, ENV["PYNOMALY_TOPIC_SCORES"]).start()
    dead = Tail(kafka_bootstrap, ENV["PYNOMALY_TOPIC_DEADLETTER"]).start()
    load = Load(kafka_bootstrap, ENV["PYNOMALY_TOPIC_EVENTS"])
    hostile: set[tuple[int, int]] = set()
    try:
        for i in range(200):
            load.event(f"ok-{i % 4}", i, 10.0 + i % 3)
        load.flush()
        before = set(load.delivered)
        load.send(b"k" * 700_000, b"{}")  # the 700 KB key
        load.send(b"arr", orjson.dumps([{}] * 2000))  # 26 KB array of rejected events
        tags = {f"t{i}": "v" * 200 for i in range(1200)}  # valid, but scored > LIMIT
        load.send(b"wide", orjson.dumps({"stream": "wide", "ts": T0, "value": 1.0, "tags": tags}))
        load.flush()
        hostile = load.delivered - before
        for i in range(200, 400):
            load.event(f"ok-{i % 4}", i, 10.0 + i % 3)
        load.flush()
        ordinary = load.delivered - hostile
        # Commits first (outputs are acknowledged before them); no barrier record on
        # topics whose exact contents are checked.
        scored = scores.wait_cover(ordinary, 90, ENV["PYNOMALY_APP_ID"], ENV["PYNOMALY_TOPIC_EVENTS"], barrier=False)
        covered = dead.wait_cover(hostile, 30, barrier=False)  # committed above, after them
        assert worker.proc.poll() is None, f"the worker died:\n{worker.log()[-3000:]}"
        text = scrape(int(worker.env["PYNOMALY_WEB_PORT"]))
    finally:
        scores.stop()
        dead.stop()
    letters = read_raw_keyed(kafka_bootstrap, ENV["PYNOMALY_TOPIC_DEADLETTER"])
    sizes = [len(k.encode()) + len(v) for k, _, v in letters]
    report("oversized-outputs", dead_letters=len(letters), largest_dead_letter_bytes=max(sizes, default=0),
           dead_letter_bytes=sum(sizes), limit=LIMIT)
    assert ordinary <= scored, f"{len(ordinary - scored)} ordinary events were not scored"
    assert hostile <= covered, f"hostile records without a dead letter: {sorted(hostile - covered)}"
    assert len(letters) == 3, f"{len(letters)} dead letters for 3 rejected records"
    assert max(sizes) < LIMIT
    reasons = sorted(orjson.loads(v)["reason"] for _, _, v in letters)
    # The 700 KB key is under max_record_bytes (1 MB): its record is rejected for its value.
    assert reasons == ["missing_stream", "missing_stream", "output_too_large"]
    assert metric(text, "pynomaly_events_deadlettered_total", 'reason="missing_stream"') == 2001
    assert "MessageSizeTooLarge" not in worker.log()
