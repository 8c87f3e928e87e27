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
    batches.run([RawRecord(b"wide", doc, None, settings.topic_events, 0, 0)])
    assert "wide" in scorer.dirty  # learned: its state is due for a checkpoint
    store = CheckpointStore(settings, scorer, metrics, state_key(settings))
    try:
        assert await store.maybe_checkpoint() == 0  # raised MessageSizeTooLargeError on main
    finally:
        await store.stop()
    assert registry.get_sample_value("pynomaly_checkpoint_writes_total", {"outcome": "error"}) >= 1
