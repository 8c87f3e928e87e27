"""Issue 13, finding 3 (in part): a checkpoint that fails (here: a state over the request
size) never fails the batch whose outputs were already acknowledged. On main the error
escaped ``maybe_checkpoint``, so the batch was not acknowledged, the worker exited and the
batch was replayed; with the same state every restart failed the same way."""

from __future__ import annotations

import orjson
import pytest
from prometheus_client import CollectorRegistry

from streams.checkpoints import CheckpointStore, state_key
from streams.metrics import Metrics
from streams.scoring import BatchScorer, RawRecord, StreamScorer, default_pipeline_factory
from streams.settings import load_settings
from tests.support.kafka import create_topics, topic_env, unique

pytestmark = pytest.mark.integration


async def test_a_checkpoint_over_the_request_size_does_not_fail_the_batch(kafka_bootstrap):
    env = {**topic_env(unique("bigstate"), 1), "PYNOMALY_KAFKA_BOOTSTRAP": kafka_bootstrap,
           "PYNOMALY_DEV_BROKER": "true", "PYNOMALY_MAX_RECORD_BYTES": "3000000",
           "PYNOMALY_PRODUCER_MAX_REQUEST_BYTES": "2000000", "PYNOMALY_CHECKPOINT_INTERVAL_S": "0.001"}
    settings = load_settings(environ=env)
    create_topics(kafka_bootstrap, [settings.topic_events, settings.topic_state], 1)
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    scorer = StreamScorer(default_pipeline_factory(settings))
    batches = BatchScorer(settings, scorer, metrics, clock=lambda: 2e9)
    # 1,000 features with 2,500-character names: the stream's state pickles to > 2.5 MB
    values = {f"{i:04d}" + "n" * 2496: float(i) for i in range(1000)}
    doc = orjson.dumps({"stream": "wide", "ts": 1_790_000_000, "values": values})
    small = orjson.dumps({"stream": "narrow", "ts": 1_790_000_000, "value": 1.0})
    batches.run([RawRecord(b"wide", doc, None, settings.topic_events, 0, 0),
                 RawRecord(b"narrow", small, None, settings.topic_events, 0, 1)])
    assert {"wide", "narrow"} <= scorer.dirty  # learned: their states are due for a checkpoint
    store = CheckpointStore(settings, scorer, metrics, state_key(settings))
    try:
        # main raised MessageSizeTooLargeError; then the whole snapshot failed, so the
        # stream beside the oversized one was never checkpointed either.
        assert await store.maybe_checkpoint() == 1
    finally:
        await store.stop()
    sample = registry.get_sample_value
    assert sample("pynomaly_checkpoint_writes_total", {"outcome": "too_large"}) == 1
    assert sample("pynomaly_checkpoint_writes_total", {"outcome": "ok"}) == 1
    assert "wide" not in scorer.dirty  # not retried forever: it cannot fit
