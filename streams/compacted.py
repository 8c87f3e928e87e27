"""Reading a (compacted) partition from its beginning to its current end.

Checkpoints and alert state are restored this way. The end is taken from both the
ListOffsets answer and the high watermark of the fetch responses, whichever is larger:
some Kafka-API brokers (Tansu, the dev broker) answer ListOffsets with a stale end once
a record batch held several records, while their fetch responses carry the right high
watermark. Trusting ListOffsets alone would end a restore early and lose state; reading
the larger end works on Apache Kafka too, where the two agree.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

# Fetch answers for an empty partition come back after the fetch wait: keep it short, and
# poll briefly, so restoring an empty partition costs tens of milliseconds, not a second.
RESTORE_FETCH_WAIT_MS = 10
POLL_MS = 50


async def read_to_end(consumer: AIOKafkaConsumer, tp: TopicPartition,
                      max_records: int = 10_000) -> AsyncIterator[Any]:
    """Yield every record of ``tp`` (assigned to ``consumer``) up to its end at the call."""
    end = (await consumer.end_offsets([tp]))[tp]
    await consumer.seek_to_beginning(tp)
    while True:
        # Known once a fetch for tp was answered (empty answers included).
        high = consumer.highwater(tp)
        if high is not None:
            end = max(end, high)
            if await consumer.position(tp) >= end:
                return
        batch = await consumer.getmany(tp, timeout_ms=POLL_MS, max_records=max_records)
        for msg in batch.get(tp, []):
            yield msg


async def log_end(consumer: AIOKafkaConsumer, tp: TopicPartition, above: int,
                  wait_s: float = 2.0) -> int:
    """The end offset of ``tp``. When ListOffsets answers ``above`` or less (a sign that an
    offset is past the log, or of a stale answer, as above), a fetch's high watermark
    confirms it. Reassigns ``consumer`` to ``tp``."""
    end = (await consumer.end_offsets([tp]))[tp]
    if end > above:
        return end
    consumer.assign([tp])
    consumer.seek(tp, end)
    for _ in range(max(1, int(wait_s * 1000 / POLL_MS))):
        await consumer.getmany(tp, timeout_ms=POLL_MS, max_records=1)
        high = consumer.highwater(tp)
        if high is not None:
            return max(end, high)
    return end


def restore_consumer_kwargs() -> dict[str, Any]:
    """Consumer options for a restore read: no group, no commits, short fetch waits."""
    return {"enable_auto_commit": False, "fetch_max_wait_ms": RESTORE_FETCH_WAIT_MS}
