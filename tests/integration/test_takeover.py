"""Two workers, one killed with SIGKILL mid-stream: the survivor continues from checkpointed state."""

from __future__ import annotations

import random
import signal
import statistics
import time

import orjson
import pytest

from detectors.pipeline import PipelineConfig, StreamPipeline
from streams.settings import load_settings
from tests.support.kafka import checkpointed_offsets, producer, read_all, topic_env, unique
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

STREAMS = 40
PER_STREAM = 150


def series(seed: int = 3) -> dict[str, list[float]]:
    rng = random.Random(seed)
    return {f"node-{s:02d}.load": [round(20 + 3 * rng.gauss(0, 1), 4) for _ in range(PER_STREAM)]
            for s in range(STREAMS)}


def reference_scores(values: list[float]) -> list[float]:
    s = load_settings(environ={})
    pipe = StreamPipeline(PipelineConfig(detector=s.detector, threshold=s.threshold, warmup=s.warmup_events))
    return [pipe.process({"value": v}).score for v in values]


def test_survivor_takes_over_with_restored_state(kafka_bootstrap, start_worker):
    env = {**topic_env(unique("takeover"), partitions=4), "PYNOMALY_CHECKPOINT_INTERVAL_S": "0.5"}
    a = start_worker(env)
    b = start_worker(env)
    # Both members must have joined before the stream starts, so each owns partitions.
    b.wait_for("Worker]: Ready", 60)
    a.wait_for("Setting newly assigned partitions", 60, count=2)
    data = series()
    p = producer(kafka_bootstrap)
    topic = env["PYNOMALY_TOPIC_EVENTS"]
    offsets: dict[tuple[int, int], tuple[str, int]] = {}

    def cb(err, msg):
        assert err is None, err
        doc = orjson.loads(msg.value())
        offsets[(msg.partition(), msg.offset())] = (doc["stream"], doc["i"])

    kill_at = PER_STREAM // 2
    for i in range(PER_STREAM):
        for name, values in data.items():
            doc = {"stream": name, "ts": 1_764_151_200 + i, "value": values[i], "i": i}
            p.produce(topic, key=name, value=orjson.dumps(doc), on_delivery=cb)
        p.flush(10)
        time.sleep(0.05)
        if i == kill_at:
            # Kill only once every stream's checkpoint covers the first half (a fixed sleep
            # was too short on a loaded machine and the survivor re-warmed some streams).
            need = {stream: o for (_, o), (stream, j) in offsets.items() if j == kill_at}
            assert len(need) == STREAMS

            def first_half_checkpointed() -> bool:
                got = checkpointed_offsets(kafka_bootstrap, env)
                return all(got.get(stream, -1) >= o for stream, o in need.items())

            wait_for(first_half_checkpointed, 60, "a checkpoint of every stream covering its first half",
                     interval=0.5)
            a.stop(signal.SIGKILL)
    p.flush(30)
    total = STREAMS * PER_STREAM
    scores = read_all(kafka_bootstrap, env["PYNOMALY_TOPIC_SCORES"], expect=total, timeout=150)
    seen = {(d["source"]["partition"], d["source"]["offset"]) for d in scores}
    assert set(offsets) <= seen, f"{len(set(offsets) - seen)} events never scored"
    assert "restored" in b.log(), "the survivor never restored a checkpoint"

    by_event: dict[tuple[str, int], float] = {}
    late_warmups = 0
    for d in scores:
        stream, i = offsets[(d["source"]["partition"], d["source"]["offset"])]
        by_event[(stream, i)] = d["score"]
        if i > kill_at and d["warming_up"]:
            late_warmups += 1
    assert late_warmups == 0, f"{late_warmups} scores after the takeover came from a re-warming detector"

    diffs = []
    for name, values in data.items():
        ref = reference_scores(values)
        diffs.extend(abs(by_event[(name, i)] - ref[i]) for i in range(kill_at + 1, PER_STREAM))
    exact = sum(d < 1e-9 for d in diffs) / len(diffs)
    print(f"after takeover: {exact:.1%} of scores identical to an uninterrupted run, "
          f"median |diff| {statistics.median(diffs):.2e}, max {max(diffs):.3f}")
    # Within the checkpoint cadence: at most a few events' learning is missed, and it fades.
    assert exact >= 0.5  # at least every stream the survivor owned all along
    assert statistics.median(diffs) < 1e-3
    assert max(diffs) < 0.25
