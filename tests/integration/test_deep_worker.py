"""A deep PyOD model (the `deep` extra) in the real worker on the real broker: refits in the
worker's pool are swapped in while events are scored, spikes are flagged, and a clean restart
restores each stream from its checkpoint (weights, not a refit) instead of re-warming it."""

from __future__ import annotations

import random
import signal

import orjson
import pytest

from tests.support.kafka import producer, read_all

pytestmark = [pytest.mark.integration, pytest.mark.deep]

STREAMS = ("svc-a.latency", "svc-b.latency")
SPIKE_AT = 320
T0 = 1_764_151_200


def _produce(bootstrap: str, topic: str, start: int, stop: int, rng: random.Random) -> None:
    p = producer(bootstrap)
    for i in range(start, stop):
        for k, stream in enumerate(STREAMS):
            # three features, two of them correlated: what the deep models are for
            load = 100 + 10 * k + rng.gauss(0, 2)
            values = {"load": round(load + (60 if i == SPIKE_AT else 0), 3),
                      "latency": round(0.5 * load + rng.gauss(0, 1), 3),
                      "errors": round(20 + rng.gauss(0, 1), 3)}
            p.produce(topic, key=stream,
                      value=orjson.dumps({"stream": stream, "ts": T0 + i, "values": values}))
    assert p.flush(30) == 0


def test_deep_model_refits_in_the_worker_and_survives_a_restart(kafka_bootstrap, app_env, start_worker):
    env = {**app_env, "PYNOMALY_DETECTOR": "pyod.vae", "PYNOMALY_WARMUP_EVENTS": "50",
           "PYNOMALY_STATE_HMAC_KEY": "k" * 32, "PYNOMALY_CHECKPOINT_INTERVAL_S": "0.5"}
    rng = random.Random(5)
    topic, scores_topic = env["PYNOMALY_TOPIC_EVENTS"], env["PYNOMALY_TOPIC_SCORES"]
    worker = start_worker(env, wait_ready=120)
    # Paced like a live stream: 50 events per stream, then wait until they are scored (a burst
    # of all 400 would be scored before the first refit, ~0.1-0.2 s, could finish).
    for start in range(0, 400, 50):
        _produce(kafka_bootstrap, topic, start, start + 50, rng)
        first = read_all(kafka_bootstrap, scores_topic, expect=2 * (start + 50), timeout=120,
                         idle=0.5)
    assert len(first) == 800, f"{len(first)} of 800 events scored"
    for stream in STREAMS:
        rows = sorted((d for d in first if d["stream"] == stream), key=lambda d: d["ts"])
        assert {d["detector"] for d in rows} == {"pyod.vae"}
        versions = [d["version"] for d in rows]
        assert versions == sorted(versions)
        assert len(set(versions)) >= 4, f"{stream}: refits swapped in: {sorted(set(versions))}"
        spike = next(d for d in rows if d["ts"] == T0 + SPIKE_AT)
        assert spike["is_anomaly"], f"{stream}: spike scored {spike['score']}"
        calm = [d for d in rows[200:] if d["ts"] != T0 + SPIKE_AT]
        assert sum(d["is_anomaly"] for d in calm) <= 2
    last_version = {s: max(d["version"] for d in first if d["stream"] == s) for s in STREAMS}
    assert worker.stop(signal.SIGTERM) == 0  # a clean stop checkpoints every stream

    start_worker(env, wait_ready=120)
    _produce(kafka_bootstrap, topic, 400, 420, rng)
    both = read_all(kafka_bootstrap, scores_topic, expect=840, timeout=180)
    after = [d for d in both if d["ts"] >= T0 + 400]
    assert len(after) == 40, f"{len(after)} of 40 events scored after the restart"
    for d in after:  # restored from the checkpoint: no re-warm-up, the refit count kept (a
        assert not d["warming_up"], d  # fresh pipeline warms up 50 events at version 1)
        assert d["version"] >= last_version[d["stream"]] >= 4, d
