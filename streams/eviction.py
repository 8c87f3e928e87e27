"""A cap on the streams a worker holds in memory: idle streams go to the checkpoint topic.

Every stream costs a detector (~8 KiB with the default pipeline), so a producer sending
ever new keys would grow a worker without bound. With ``max_streams_in_memory`` set, the
least recently scored streams beyond the cap are written to their partition of the state
topic (signed like every checkpoint) and dropped after each batch; the evictor remembers
where each went and restores it before its next event is scored, so scores are exactly
those of a worker that never evicted.

In memory: at most ``cap`` pipelines plus the distinct new streams of one batch, and
an index entry (~150 bytes) per evicted stream.

Wiring (see docs/reliability.md): ``restore_for`` before a batch is scored, ``touch`` and
``enforce`` after its outputs are acknowledged (under the checkpoint batch lock), ``plan``
when a partition's checkpoints are restored, ``forget_partitions`` when it is revoked.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import pickle
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.checkpoints import CheckpointSignatureError, CheckpointStore, sign, verify
from streams.errors import SettingsError
from streams.kafka_auth import aiokafka_auth_kwargs
from streams.scoring import BatchOutput, StreamScorer

log = logging.getLogger(__name__)


class Count(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class _NoCount:
    def inc(self, amount: float = 1) -> None:
        pass


class StreamEvictor:
    """LRU cap on ``scorer.pipelines`` by count, backed by the checkpoint topic."""

    def __init__(self, scorer: StreamScorer, store: CheckpointStore, cap: int,
                 evictions: Count | None = None, restores: Count | None = None,
                 rejected: Count | None = None) -> None:
        if cap < 1:
            raise SettingsError(
                f"invalid setting max_streams_in_memory / PYNOMALY_MAX_STREAMS_IN_MEMORY (got {cap}): "
                "expected an integer >= 1, or 0 for no cap"
            )
        self.scorer = scorer
        self.store = store
        self.cap = cap
        self.evictions = evictions or _NoCount()
        self.restores = restores or _NoCount()
        self.rejected = rejected or _NoCount()
        # in-memory streams, least recently scored first
        self.lru: collections.OrderedDict[str, None] = collections.OrderedDict()
        # evicted stream -> (state partition, offset of its checkpoint record)
        self.index: dict[str, tuple[int, int]] = {}
        self._consumer: AIOKafkaConsumer | None = None

    def touch(self, streams: Iterable[str]) -> None:
        lru = self.lru
        for s in streams:
            if s in lru:
                lru.move_to_end(s)
            else:
                lru[s] = None

    def touch_output(self, out: BatchOutput) -> None:
        """Mark the streams of a batch's scored records as just used."""
        self.touch(key.decode("utf-8", "replace") for key, _ in out.scores if key is not None)

    async def enforce(self) -> int:
        """Evict the least recently used streams beyond the cap; returns how many."""
        pipelines = self.scorer.pipelines
        excess = len(pipelines) - self.cap
        if excess <= 0:
            return 0
        if len(self.lru) < len(pipelines):
            # restored on assignment but not scored since: the coldest of all
            for s in pipelines:
                if s not in self.lru:
                    self.lru[s] = None
                    self.lru.move_to_end(s, last=False)
        victims: list[str] = []
        for s in list(self.lru):
            if s in pipelines:
                victims.append(s)
                if len(victims) == excess:
                    break
            else:
                del self.lru[s]
        producer = await self._producer()
        sends: list[tuple[str, int, Any]] = []
        for s in victims:
            owned = self.scorer.owner.get(s)
            if owned is None:  # never learned an event: nothing worth keeping
                continue
            partition, offset = owned
            blob = sign(pickle.dumps((offset, pipelines[s]), protocol=pickle.HIGHEST_PROTOCOL),
                        self.store.key)
            sends.append((s, partition, await producer.send(self.store.topic, blob,
                                                            key=s.encode("utf-8"), partition=partition)))
        results = await asyncio.gather(*(fut for _, _, fut in sends))
        for (s, partition, _), meta in zip(sends, results, strict=True):
            self.index[s] = (partition, meta.offset)
        for s in victims:
            pipelines.pop(s, None)
            self.scorer.owner.pop(s, None)
            self.scorer.dirty.discard(s)
            self.lru.pop(s, None)
        self.evictions.inc(len(victims))
        return len(victims)

    async def restore_for(self, streams: Iterable[str | bytes | None]) -> int:
        """Bring back the evicted streams among ``streams`` (record keys) before scoring."""
        wanted = set()
        for s in streams:
            if isinstance(s, bytes):
                s = s.decode("utf-8", "replace")
            if s is not None and s in self.index and s not in self.scorer.pipelines:
                wanted.add(s)
        restored = 0
        for s in sorted(wanted, key=self.index.__getitem__):
            partition, offset = self.index.pop(s)
            blob = await self._fetch(s, partition, offset)
            if blob is None:
                log.warning("evicted state of a stream on partition %d is gone; it re-warms", partition)
                continue
            try:
                learned, pipeline = pickle.loads(verify(blob, self.store.key))  # noqa: S301 (verified)
            except CheckpointSignatureError as exc:
                self.rejected.inc()
                log.warning("rejected evicted state on partition %d: %s; it re-warms", partition, exc)
                continue
            self.scorer.restore(s, pipeline, partition, learned)
            self.lru[s] = None
            restored += 1
        self.restores.inc(restored)
        return restored

    def plan(self, partition: int, offsets: Mapping[str, int]) -> set[str]:
        """On assignment: which of a partition's checkpointed streams to load now.

        ``offsets`` maps stream -> offset of its latest checkpoint record. The most recently
        written ones fill the free capacity; the rest are indexed for restore on demand.
        """
        free = max(0, self.cap - len(self.scorer.pipelines))
        newest_first = sorted(offsets, key=offsets.__getitem__, reverse=True)
        load = set(newest_first[:free])
        for s in newest_first[free:]:
            self.index[s] = (partition, offsets[s])
        return load

    def forget_partitions(self, partitions: set[int]) -> None:
        """A revoked partition's evicted streams belong to its next owner now."""
        for s in [s for s, (p, _) in self.index.items() if p in partitions]:
            del self.index[s]
        for s in [s for s in self.lru if s not in self.scorer.pipelines]:
            del self.lru[s]

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def _producer(self) -> Any:
        if self.store._producer is None:  # started lazily, like the store's own checkpoints
            await self.store.start()
        return self.store._producer

    async def _fetch(self, stream: str, partition: int, offset: int) -> bytes | None:
        """The value of one checkpoint record (or a later one of the same stream)."""
        if self._consumer is None:
            s = self.store.settings
            self._consumer = AIOKafkaConsumer(bootstrap_servers=s.kafka_bootstrap,
                                              enable_auto_commit=False, **aiokafka_auth_kwargs(s))
            await self._consumer.start()
        consumer = self._consumer
        tp = TopicPartition(self.store.topic, partition)
        if tp not in consumer.assignment():
            consumer.assign([*consumer.assignment(), tp])
        consumer.seek(tp, offset)
        key = stream.encode("utf-8")
        for _ in range(20):  # compaction may have removed it in favour of a later record
            batch = await consumer.getmany(tp, timeout_ms=1000, max_records=50)
            for msg in batch.get(tp, []):
                if msg.key == key and msg.value is not None:
                    return bytes(msg.value)
        return None
