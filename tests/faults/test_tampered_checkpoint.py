"""A checkpoint with a wrong HMAC is rejected before unpickling; that stream re-warms.

The forged record is a pickle that would create a file if it were ever unpickled: the
signature check must come first. The rejection shows in the log and in
``pynomaly_checkpoint_restores_total{outcome="rejected"}``; an honest stream on the same
worker is restored as usual.
"""

from __future__ import annotations

import pickle
import signal
from pathlib import Path

import pytest
from confluent_kafka import Producer

from streams.checkpoints import MAGIC
from tests.faults.support import Load, Tail, metric, read_raw_keyed, report, scrape
from tests.support.kafka import topic_env, unique

pytestmark = pytest.mark.faults

ENV = {**topic_env(unique("tamper")), "PYNOMALY_CHECKPOINT_INTERVAL_S": "0.5",
       "PYNOMALY_WARMUP_EVENTS": "30"}
PRESTART = [ENV]  # started ahead by tests/faults/conftest.py


class Planted:
    """Unpickling this creates ``path``: proof that a forged checkpoint was executed."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_tampered_checkpoint_is_rejected_and_the_stream_rewarms(kafka_bootstrap, start_worker, tmp_path):
    env = ENV
    load = Load(kafka_bootstrap, env["PYNOMALY_TOPIC_EVENTS"])
    tail = Tail(kafka_bootstrap, env["PYNOMALY_TOPIC_SCORES"])
    tail.keep_values = True
    tail.start()
    first = start_worker(env)
    try:
        for i in range(60):
            load.event("victim", i, 10.0 + (i % 5) / 10)
            load.event("honest", i, 20.0 + (i % 3) / 10)
        load.flush()
        tail.wait(120, timeout=60)
        first.stop(signal.SIGTERM)  # a clean stop checkpoints every dirty stream
        state = {k: (p, v) for k, p, v in read_raw_keyed(kafka_bootstrap, env["PYNOMALY_TOPIC_STATE"])}
        assert {"victim", "honest"} <= set(state), sorted(state)
        partition, genuine = state["victim"]
        marker = tmp_path / "forged-checkpoint-was-unpickled"
        forged = pickle.dumps((10**9, Planted(str(marker))))
        # Right magic, a digest of the right length, the wrong key: only the HMAC can tell.
        tampered = MAGIC + b"\x00" * 32 + forged
        p = Producer({"bootstrap.servers": kafka_bootstrap})
        p.produce(env["PYNOMALY_TOPIC_STATE"], key=b"victim", value=tampered, partition=partition)
        assert p.flush(10) == 0

        second = start_worker(env)
        for i in range(60, 65):
            load.event("victim", i, 10.0 + (i % 5) / 10)
            load.event("honest", i, 20.0 + (i % 3) / 10)
        load.flush()
        tail.wait(130, timeout=60)
        second.wait_for("rejected checkpoint", 10)
        text = scrape(int(second.env["PYNOMALY_WEB_PORT"]))
    finally:
        tail.stop()
    import orjson

    after = [orjson.loads(v) for v in tail.values[120:]]
    victim = [d for d in after if d["stream"] == "victim"]
    honest = [d for d in after if d["stream"] == "honest"]
    rejected = metric(text, "pynomaly_checkpoint_restores_total", 'outcome="rejected"')
    restored = metric(text, "pynomaly_checkpoint_restores_total", 'outcome="ok"')
    report("tampered-checkpoint", rejected_metric=rejected, restored_ok_metric=restored,
           victim_rewarming=all(d["warming_up"] for d in victim))
    assert not marker.exists(), "a forged checkpoint was unpickled"
    assert len(victim) == 5 and all(d["warming_up"] for d in victim), "the victim did not re-warm"
    assert len(honest) == 5 and not any(d["warming_up"] for d in honest), "the honest stream re-warmed"
    assert rejected == 1.0
    assert restored >= 1.0
    log = second.log()
    assert "rejected checkpoint" in log and "signature mismatch" in log
    assert genuine[:len(MAGIC)] == MAGIC
