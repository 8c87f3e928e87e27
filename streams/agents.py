"""Faust agents. The score agent takes events in batches and produces outputs per batch.

Offsets commit only after outputs are written: the batch's events are acked (made
committable) only when this loop body returns, and it returns only after every
output of the batch has been acknowledged by the broker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, cast

import faust

from streams.scoring import BatchOutput, BatchScorer, RawRecord

if TYPE_CHECKING:
    from streams.app import Runtime

log = logging.getLogger(__name__)


async def produce_batch(app: faust.App, runtime: Runtime, out: BatchOutput) -> int:
    """Hand every output to the producer at once, then wait for all acknowledgements."""
    s = runtime.settings
    producer = app.producer
    pending: list[Any] = []
    for topic, records in (
        (s.topic_scores, out.scores),
        (s.topic_anomalies, out.anomalies),
        (s.topic_deadletter, out.deadletters),
        (s.topic_events, out.forwards),
    ):
        for key, value in records:
            pending.append(await producer.send(topic, key, value, None, None, None))
    if pending:
        await asyncio.gather(*pending)
    return len(pending)


def register_scoring(app: faust.App, runtime: Runtime) -> None:
    s = runtime.settings
    events = app.topic(
        s.topic_events,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=s.topic_partitions,
    )
    batch_scorer = BatchScorer(s, runtime.scorer, runtime.metrics)
    batch_duration = runtime.metrics.batch_duration
    checkpoints = runtime.checkpoints

    if checkpoints is not None:
        store = checkpoints

        @app.timer(max(0.5, s.checkpoint_interval_s / 2))
        async def checkpoint_when_idle() -> None:
            await store.maybe_checkpoint()

    @app.agent(events, name="score")
    async def score(stream: faust.StreamT[bytes]) -> None:
        # take_events is on the concrete Stream; the StreamT protocol lacks it.
        batches = cast(faust.Stream[bytes], stream).take_events
        async for batch in batches(s.batch_max_events, s.batch_within_s):
            started = time.perf_counter()
            records = []
            if checkpoints is not None:
                # A stream's state must be back before its partition's first event is scored.
                await checkpoints.ensure_restored({ev.message.partition for ev in batch})
            for ev in batch:
                msg = ev.message
                records.append(
                    RawRecord(msg.key, msg.value, int(msg.timestamp * 1000) if msg.timestamp else None,
                              msg.topic, msg.partition, msg.offset)
                )
            if checkpoints is None:
                out = batch_scorer.run(records)
                await produce_batch(app, runtime, out)
            else:
                async with checkpoints.batch_lock:
                    out = batch_scorer.run(records)
                    await produce_batch(app, runtime, out)
            batch_duration.observe(time.perf_counter() - started)
            if checkpoints is not None:
                await checkpoints.maybe_checkpoint()
