"""Issue 13, finding 8: with ``max_streams_in_memory=0`` a failed batch was never marked
failed, so the next progress mark (or the shutdown checkpoint) claimed events whose
outputs were never acknowledged: a replacement would skip them (data loss)."""

from __future__ import annotations

import orjson
import pytest

from streams.agents import _Record
from streams.app import create_app
from streams.settings import load_settings
from tests.support.kafka import create_topics, topic_env, unique

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("cap", ["0", "1000"])
async def test_a_failed_batch_stops_marks_and_checkpoints(kafka_bootstrap, cap):
    env = {**topic_env(unique("fail"), 1), "PYNOMALY_KAFKA_BOOTSTRAP": kafka_bootstrap,
           "PYNOMALY_DEV_BROKER": "true", "PYNOMALY_MAX_STREAMS_IN_MEMORY": cap}
    settings = load_settings(environ=env)
    create_topics(kafka_bootstrap, [settings.topic_events, settings.topic_state], 1)
    app = create_app(settings)
    runtime = app.runtime  # type: ignore[attr-defined]
    handle = app._pynomaly_batch_handlers[settings.topic_events]  # type: ignore[attr-defined]
    records = [_Record(settings.topic_events, 0, i, None, b"s",
                       orjson.dumps({"stream": "s", "ts": 1_790_000_000 + i, "value": 1.0}))
               for i in range(10)]
    # The app's producer is not started: producing the outputs fails after the batch was
    # scored and learned, as a broker failure mid-batch would.
    with pytest.raises(Exception):  # noqa: B017 (whatever the producer raises)
        await handle(records)
    assert runtime.scorer.progress == {0: 9}  # learned, outputs never acknowledged
    store = runtime.checkpoints
    try:
        assert await store.mark_progress() == 0, "a mark claimed unacknowledged outputs"
        assert await store.checkpoint() == 0, "a checkpoint claimed unacknowledged outputs"
    finally:
        await store.stop()
