"""Incident state checkpoints: open incidents survive restarts and follow their partition.

Partition p of ``<alerts topic>.state`` (compacted, JSON) holds the incident state of the
streams of scores partition p. Each value is signed with the state key, with the scores
topic, partition and stream (as detector checkpoints are): a writer to the topic without
the key can neither suppress a stream's incidents nor break a restore. Without a key
(``PYNOMALY_STATE_HMAC_KEY``) incident state is not kept across restarts. A stream's state is written after the alert records of the
batch that changed it were acknowledged, with the scores offset it covers; a restarted or
new owner restores the partition before it handles its first record, and skips replayed
records at or below that offset, so an open incident keeps its id and resolves once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.alerting.engine import AlertEngine
from streams.alerting.producer import AlertProducer
from streams.checkpoints import CheckpointSignatureError, sign, state_key, verify
from streams.compacted import read_to_end, restore_consumer_kwargs
from streams.kafka_auth import aiokafka_auth_kwargs
from streams.settings import Settings

log = logging.getLogger(__name__)


def state_topic(settings: Settings) -> str:
    return f"{settings.topic_alerts}.state"


def _header(topic: str, partition: int, stream: str) -> bytes:
    return orjson.dumps(["pynomaly-alert-state", 1, topic, partition, stream]) + b"\n"


class AlertStateStore:
    def __init__(self, settings: Settings, engine: AlertEngine) -> None:
        self.settings = settings
        self.engine = engine
        self.key = state_key(settings)
        if self.key is None:
            log.warning("alerting: PYNOMALY_STATE_HMAC_KEY is not set: incident state is not kept "
                        "across restarts (open incidents start afresh)")
        self.topic = state_topic(settings)
        self.owner: dict[str, int] = {}  # stream -> scores partition
        self.offsets: dict[str, int] = {}  # stream -> last scores offset covered by its state
        self.dirty: set[str] = set()
        self.restored: set[int] = set()
        self._lock = asyncio.Lock()
        self._start_lock = asyncio.Lock()
        self.extra_topics: list[str] = []  # other alerting topics to create at start
        # every alerting write goes through this one producer (see streams/alerting/producer.py)
        self.producer = AlertProducer(settings, [])

    async def start(self) -> None:
        """Create the state (and extra) topics, then start the producer (idempotent)."""
        async with self._start_lock:
            if self.producer.started:
                return
            await self._ensure_topic()
            s = self.settings
            self.producer.topics = list(dict.fromkeys(
                [s.topic_alerts, s.topic_deadletter, self.topic, *self.extra_topics]))
            await self.producer.start()

    async def stop(self) -> None:
        await self.producer.stop()

    def replayed(self, stream: str, partition: int, offset: int) -> bool:
        """True if this scores record is already reflected in the restored state."""
        self.owner[stream] = partition
        return offset <= self.offsets.get(stream, -1)

    def touch(self, stream: str, offset: int) -> None:
        self.dirty.add(stream)
        self.offsets[stream] = max(offset, self.offsets.get(stream, -1))

    async def flush(self) -> int:
        """Write every changed stream's state and wait for the acknowledgements."""
        if not self.dirty:
            return 0
        await self.start()
        streams = sorted(self.dirty)
        self.dirty.difference_update(streams)  # touched again while we await: written next time
        if self.key is None:
            return 0
        records, partitions = [], []
        for stream in streams:
            partition = self.owner.get(stream)
            if partition is None:  # never seen on a scores partition here: nothing to bind it to
                continue
            doc = self.engine.snapshot(stream)
            doc["offset"] = self.offsets.get(stream, -1)
            blob = sign(_header(self.settings.topic_scores, partition, stream) + orjson.dumps(doc), self.key)
            records.append((self.topic, stream.encode(), blob))
            partitions.append(partition)
        await self.producer.publish(records, partitions)
        return len(records)

    async def ensure_restored(self, partitions: Iterable[int]) -> None:
        """Restore the partitions not restored yet, concurrently (the scoring drain waits)."""
        async with self._lock:
            missing = sorted(set(partitions) - self.restored)
            if not missing:
                return
            await self.start()
            if self.key is None:  # nothing was kept, nothing to trust
                self.restored.update(missing)
                return
            counts = await asyncio.gather(*(self._restore(p) for p in missing))
            for p, n in zip(missing, counts, strict=True):
                self.restored.add(p)
                log.info("alerting: restored incident state of %d streams of partition %d", n, p)

    def forget_partitions(self, partitions: set[int]) -> None:
        gone = {s for s, p in self.owner.items() if p in partitions}
        self.engine.forget(gone)
        self.engine.drop_partitions(partitions)
        for s in gone:
            self.owner.pop(s, None)
            self.offsets.pop(s, None)
            self.dirty.discard(s)
        self.restored.difference_update(partitions)

    async def _restore(self, partition: int) -> int:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap,
                                    **restore_consumer_kwargs(), **aiokafka_auth_kwargs(self.settings))
        await consumer.start()
        tp = TopicPartition(self.topic, partition)
        latest: dict[str, bytes] = {}
        try:
            consumer.assign([tp])
            async for msg in read_to_end(consumer, tp):
                if msg.key is not None and msg.value is not None:
                    latest[msg.key.decode("utf-8", "replace")] = msg.value
        finally:
            await consumer.stop()
        restored = 0
        for stream, blob in latest.items():
            try:
                doc = self._load(blob, partition, stream)
                offset = int(doc.get("offset", -1))
                self.engine.restore(stream, doc)
            except Exception as exc:  # forged, another stream's, or malformed: never fatal
                self.engine.forget({stream})  # nothing half-restored stays
                log.warning("alerting: rejected incident state of a stream on partition %d (%s: %s); "
                            "its incidents start afresh", partition, type(exc).__name__, str(exc)[:200])
                continue
            self.owner[stream] = partition
            self.offsets[stream] = offset
            restored += 1
        return restored

    def _load(self, blob: bytes, partition: int, stream: str) -> dict[str, Any]:
        if self.key is None:
            raise CheckpointSignatureError("no state key to verify it with")
        payload = verify(blob, self.key)
        header = _header(self.settings.topic_scores, partition, stream)
        if not payload.startswith(header):
            raise CheckpointSignatureError("signed for another stream, partition or topic")
        doc = orjson.loads(payload[len(header):])
        if not isinstance(doc, dict):
            raise CheckpointSignatureError("not an object")
        return doc

    async def _ensure_topic(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.kafka_bootstrap,
                                    **aiokafka_auth_kwargs(self.settings))
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            extra = [NewTopic(t, self.settings.topic_partitions, self.settings.topic_replication)
                     for t in self.extra_topics if t not in existing]
            if extra:
                await admin.create_topics(extra)
            if self.topic in existing:
                return
            described = await admin.describe_topics([self.settings.topic_scores])
            partitions = len(described[0]["partitions"]) or self.settings.topic_partitions
            await admin.create_topics([NewTopic(self.topic, partitions, self.settings.topic_replication,
                                                topic_configs={"cleanup.policy": "compact"})])
        except Exception as exc:  # a concurrent worker may have created it first
            if "TopicAlreadyExists" not in type(exc).__name__:
                raise
        finally:
            await admin.close()
