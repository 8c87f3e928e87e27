"""Issue 13, findings 2 and 6: progress marks and checkpoints across incarnations of a topic.

A mark or checkpoint at offset 2,000,000 (a recreated topic, an offset reset to reprocess,
a mirrored failover) must not make the new events below it look like replays: offsets
above the events partition's log end are ignored with a warning. A checkpoint is bound to
its topic, partition and stream: copied under another stream's key it is rejected.
"""

from __future__ import annotations

import logging

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry

from streams.checkpoints import CheckpointStore, state_key
from streams.metrics import Metrics
from streams.scoring import BatchScorer, RawRecord, StreamScorer, default_pipeline_factory
from streams.settings import load_settings
from tests.support.kafka import create_topics, producer, read_all, topic_env, unique

pytestmark = pytest.mark.integration

FAR = 2_000_000


def stack(settings):
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    scorer = StreamScorer(default_pipeline_factory(settings))
    store = CheckpointStore(settings, scorer, metrics, state_key(settings))
    return scorer, BatchScorer(settings, scorer, metrics, clock=lambda: 2e9), store, registry


def records(settings, stream, offsets):
    return [RawRecord(stream.encode(), orjson.dumps({"stream": stream, "ts": 1_790_000_000 + o, "value": 1.0 + o % 3}),
                      None, settings.topic_events, 0, o) for o in offsets]


def setup(kafka_bootstrap):
    env = {**topic_env(unique("inc"), 1), "PYNOMALY_KAFKA_BOOTSTRAP": kafka_bootstrap,
           "PYNOMALY_DEV_BROKER": "true"}
    settings = load_settings(environ=env)
    create_topics(kafka_bootstrap, [settings.topic_events, settings.topic_state], 1)
    return settings


def fill_events(kafka_bootstrap, settings, n):
    p = producer(kafka_bootstrap)
    for o in range(n):
        p.produce(settings.topic_events, key=b"s", partition=0,
                  value=orjson.dumps({"stream": "s", "ts": 1_790_000_000 + o, "value": 1.0}))
    assert p.flush(30) == 0


async def test_marks_and_checkpoints_above_the_log_end_are_ignored(kafka_bootstrap, caplog):
    settings = setup(kafka_bootstrap)
    # The previous incarnation: stream "s" learned up to offset FAR, every output written.
    old, old_batches, old_store, _ = stack(settings)
    old_batches.run(records(settings, "s", range(FAR - 60, FAR + 1)))
    assert await old_store.checkpoint() == 1
    assert await old_store.mark_progress() == 1
    await old_store.stop()
    # The new incarnation of the events topic holds 100 events, offsets 0..99.
    fill_events(kafka_bootstrap, settings, 100)
    scorer, batches, store, _ = stack(settings)
    with caplog.at_level(logging.WARNING):
        await store.ensure_restored({0})
    out = batches.run(records(settings, "s", range(100)))
    await store.stop()
    assert len(out.scores) == 100, f"{100 - len(out.scores)} of 100 new events got no score"
    assert "above the log end" in caplog.text
    assert "s" in scorer.pipelines  # the model is kept; only its offset is dropped


async def test_marks_and_checkpoints_below_the_log_end_still_skip_replays(kafka_bootstrap):
    settings = setup(kafka_bootstrap)
    fill_events(kafka_bootstrap, settings, 100)
    old, old_batches, old_store, _ = stack(settings)
    old_batches.run(records(settings, "s", range(60)))
    await old_store.checkpoint()
    await old_store.mark_progress()
    await old_store.stop()
    scorer, batches, store, registry = stack(settings)
    await store.ensure_restored({0})
    out = batches.run(records(settings, "s", range(100)))
    await store.stop()
    assert [orjson.loads(v)["source"]["offset"] for _, v in out.scores] == list(range(60, 100))


async def test_a_checkpoint_copied_under_another_stream_is_rejected(kafka_bootstrap):
    settings = setup(kafka_bootstrap)
    old, old_batches, old_store, _ = stack(settings)
    old_batches.run(records(settings, "a", range(60)))
    await old_store.checkpoint()
    await old_store.stop()
    state = [r for r in read_all_raw(kafka_bootstrap, settings.topic_state) if r[0] == b"a"]
    assert state
    # A writer to the state topic without the key copies a's signed state under b's key.
    p = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await p.start()
    try:
        await p.send_and_wait(settings.topic_state, state[-1][1], key=b"b", partition=0)
    finally:
        await p.stop()
    scorer, _, store, registry = stack(settings)
    await store.ensure_restored({0})
    await store.stop()
    assert "a" in scorer.pipelines and "b" not in scorer.pipelines
    assert registry.get_sample_value("pynomaly_checkpoint_restores_total", {"outcome": "rejected"}) == 1


def read_all_raw(bootstrap, topic):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("raw"), "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        out, empty = [], 0
        while empty < 5:
            msgs = [m for m in c.consume(100, 0.3) if not m.error()]
            empty = 0 if msgs else empty + 1
            out.extend((m.key(), m.value()) for m in msgs)
        return out
    finally:
        c.close()


_ = read_all  # the JSON reader of tests.support does not fit pickled state
