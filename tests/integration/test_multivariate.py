"""Multivariate events through a worker on the real broker, default settings: every
feature of ``values`` is scored, the anomaly names the feature that moved, and 50 calm
features raise no more false alarms than one."""

from __future__ import annotations

import time

import numpy as np
import orjson
import pytest

from tests.support.kafka import producer, read_all

pytestmark = pytest.mark.integration

T0 = int(time.time()) - 20_000 * 60  # one event a minute, ending about now


def _calm(rng: np.random.Generator, names: list[str]) -> dict[str, float]:
    return {k: round(float(rng.normal(10.0 * i, 1.0 + i % 3)), 4) for i, k in enumerate(names)}


def test_every_feature_counts_and_calm_features_stay_quiet(kafka_bootstrap, app_env, start_worker):
    start_worker(app_env)
    rng = np.random.default_rng(12)
    p = producer(kafka_bootstrap)
    topic = app_env["PYNOMALY_TOPIC_EVENTS"]
    three, twenty, fifty = ["cpu", "mem", "disk"], [f"f{k}" for k in range(20)], [f"g{k}" for k in range(50)]
    sent = 0

    def send(stream: str, i: int, values: dict[str, float]) -> None:
        nonlocal sent
        p.produce(topic, key=stream, value=orjson.dumps({"stream": stream, "ts": T0 + 60 * i,
                                                         "values": values}))
        sent += 1

    for i in range(1200):
        x3, x20 = _calm(rng, three), _calm(rng, twenty)
        if i == 1100:
            x3["mem"] += 360.0  # about 360 sigma, in the second feature only
            x20["f13"] += 30.0  # 15 sigma in one of twenty
        send("host-a.sys", i, x3)
        send("host-b.sys", i, x20)
    for i in range(10_000):
        send("host-c.sys", i, _calm(rng, fifty))
    p.flush(30)

    scored = read_all(kafka_bootstrap, app_env["PYNOMALY_TOPIC_SCORES"], expect=sent, timeout=240, idle=2)
    assert len(scored) >= sent
    anomalies = [d for d in scored if d["is_anomaly"]]
    by_stream = {s: [d for d in anomalies if d["stream"] == s] for s in ("host-a.sys", "host-b.sys", "host-c.sys")}

    # The spike in mem is found and named, with the band mem was expected in.
    (a,) = by_stream["host-a.sys"]
    assert a["ts"] == T0 + 60 * 1100
    top = max(a["contributions"], key=a["contributions"].get)
    assert top == "mem" and a["contributions"]["mem"] >= 0.5
    assert set(a["expected"]) == set(three)
    assert a["expected"]["mem"]["high"] < a["values"]["mem"]
    (b,) = by_stream["host-b.sys"]
    assert b["ts"] == T0 + 60 * 1100 and max(b["contributions"], key=b["contributions"].get) == "f13"
    # Ten thousand events of fifty calm features: nothing.
    assert by_stream["host-c.sys"] == []
    # Every scored multivariate record carries a band per feature once the stream is warm.
    late = [d for d in scored if d["stream"] == "host-c.sys" and not d["warming_up"]]
    assert late and all(set(d["expected"]) == set(fifty) for d in late[-100:])
