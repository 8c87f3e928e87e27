"""Restores read a partition to its real end, even where ListOffsets lags (Tansu)."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.compacted import read_to_end, restore_consumer_kwargs
from tests.support.kafka import create_topics, unique

pytestmark = pytest.mark.integration


async def _write_then_read(bootstrap: str, topic: str, n: int) -> tuple[list[int], list[int]]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        # Multi-record batches: the case where the dev broker's ListOffsets answer lags.
        futures = [await producer.send(topic, b"v%d" % i, key=b"k%d" % i, partition=0)
                   for i in range(n)]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    seen: dict[int, list[int]] = {}
    for partition in (0, 1):
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, **restore_consumer_kwargs())
        await consumer.start()
        try:
            tp = TopicPartition(topic, partition)
            consumer.assign([tp])
            seen[partition] = [msg.offset async for msg in read_to_end(consumer, tp)]
        finally:
            await consumer.stop()
    return seen[0], seen[1]


def test_reads_every_record_of_multi_record_batches_and_empty_partitions(kafka_bootstrap):
    topic = unique("compacted")
    create_topics(kafka_bootstrap, [topic], partitions=2)
    full, empty = asyncio.run(_write_then_read(kafka_bootstrap, topic, 5_000))
    assert full == list(range(5_000))
    assert empty == []
