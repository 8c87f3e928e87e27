"""A cap on the streams a worker holds in memory: idle streams go to the checkpoint topic.

Every stream costs a detector (~6 KiB with the default pipeline), so a producer sending
ever new keys would grow a worker without bound. With ``max_streams_in_memory`` set, the
least recently scored streams beyond the cap are written to their partition of the state
topic (signed like every checkpoint) and dropped after each batch; the evictor remembers
where each went and restores it before its next event is scored, so scores are exactly
those of a worker that never evicted. Without a checkpoint store (no HMAC key) evicted
streams are dropped and re-warm on their next event: memory stays bounded either way.

In memory: at most ``cap`` pipelines plus the distinct new streams of one batch, and an
index entry (~130 bytes: the key string and one packed int) per evicted stream.

A batch's evicted streams are read back together: one consumer, every needed partition
at once, sequential reads between the wanted offsets (seeking over long gaps), so a batch
that brings back hundreds of streams waits a few fetch round trips, not one per stream.

Wiring (streams/app.py): ``restore_for`` before a batch is scored, ``touch`` and
``enforce`` after its outputs are acknowledged, ``plan`` when a partition's checkpoints
are restored, ``forget_partitions`` when it is revoked.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.checkpoints import CheckpointSignatureError, CheckpointStore, dump_state, load_state
from streams.errors import SettingsError
from streams.kafka_auth import aiokafka_auth_kwargs
from streams.scoring import BatchOutput, StreamScorer

log = logging.getLogger(__name__)

# Index entries pack (offset, partition) into one int: a tuple of two ints costs ~3x more.
_PART_BITS = 16
_PART_MASK = (1 << _PART_BITS) - 1
# Wanted offsets further apart than this are sought, not read through.
SEEK_GAP = 500
# A restore that cannot find a record within this long gives up: the stream re-warms.
FETCH_DEADLINE_S = 30.0


def _pack(partition: int, offset: int) -> int:
    return (offset << _PART_BITS) | partition


def _unpack(entry: int) -> tuple[int, int]:
    return entry & _PART_MASK, entry >> _PART_BITS


class Count(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class _NoCount:
    def inc(self, amount: float = 1) -> None:
        pass


class StreamEvictor:
    """LRU cap on ``scorer.pipelines`` by count, backed by the checkpoint topic."""

    def __init__(self, scorer: StreamScorer, store: CheckpointStore | None, cap: int,
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
        # evicted stream -> packed (state partition, offset of its checkpoint record)
        self.index: dict[str, int] = {}
        self.slowest_restore_s = 0.0  # longest restore_for so far (reported by the fault suite)
        self._consumer: AIOKafkaConsumer | None = None

    def touch(self, streams: Iterable[str | bytes | None]) -> None:
        """Mark streams as just used; keys without a stream in memory (a dead letter's,
        a forwarded record's) are ignored, or random keys would grow the LRU."""
        lru, pipelines = self.lru, self.scorer.pipelines
        for s in streams:
            if s is None:
                continue
            if isinstance(s, bytes):
                s = s.decode("utf-8", "replace")
            if s not in pipelines:
                continue
            if s in lru:
                lru.move_to_end(s)
            else:
                lru[s] = None

    def touch_output(self, out: BatchOutput) -> None:
        """Mark the streams of a batch's scored records as just used."""
        self.touch(key for key, _ in out.scores)

    async def enforce(self) -> int:
        """Evict the least recently used streams beyond the cap; returns how many.

        Call only once the outputs of every event the streams learned are acknowledged:
        an evicted state is a checkpoint, and a restart would skip the events it covers.
        """
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
        if self.store is not None:
            await self._write(victims)
        for s in victims:
            self.scorer.drop(s)
            self.lru.pop(s, None)
        self.evictions.inc(len(victims))
        return len(victims)

    async def _write(self, victims: list[str]) -> None:
        assert self.store is not None
        producer = await self._producer()
        pipelines, owner = self.scorer.pipelines, self.scorer.owner
        sends: list[tuple[str, int, Any]] = []
        for s in victims:
            owned = owner.get(s)
            if owned is None:  # never learned an event: nothing worth keeping
                continue
            partition, offset = owned
            blob = dump_state(self.store.key, self.store.events_topic, partition, s, offset, pipelines[s],
                              self.scorer.features.get(s))
            sends.append((s, partition, await producer.send(self.store.topic, blob,
                                                            key=s.encode("utf-8"), partition=partition)))
        results = await asyncio.gather(*(fut for _, _, fut in sends))
        for (s, partition, _), meta in zip(sends, results, strict=True):
            self.index[s] = _pack(partition, meta.offset)

    async def restore_for(self, streams: Iterable[str | bytes | None]) -> int:
        """Bring back the evicted streams among ``streams`` (record keys) before scoring."""
        index, pipelines = self.index, self.scorer.pipelines
        wanted: dict[str, int] = {}
        for s in streams:
            if isinstance(s, bytes):
                s = s.decode("utf-8", "replace")
            if s is not None and s in index and s not in pipelines:
                wanted[s] = index.pop(s)
        if not wanted:
            return 0
        started = time.perf_counter()
        blobs = await self._fetch_many(wanted)
        restored = 0
        assert self.store is not None  # nothing is indexed without a store
        for s, entry in wanted.items():
            partition, _ = _unpack(entry)
            blob = blobs.get(s)
            if blob is None:
                log.warning("evicted state of a stream on partition %d is gone; it re-warms", partition)
                continue
            try:
                learned, pipeline, features = load_state(blob, self.store.key, self.store.events_topic,
                                                         partition, s)
            except CheckpointSignatureError as exc:
                self.rejected.inc()
                log.warning("rejected evicted state on partition %d: %s; it re-warms", partition, exc)
                continue
            if learned >= self.store.log_ends.get(partition, learned + 1):
                learned = -1  # of another incarnation of the partition (see CheckpointStore)
            bind = getattr(pipeline.detector, "bind", None)
            if bind is not None:  # windowed detectors need this worker's refit pool back
                bind(self.store.executor, None)
            self.scorer.restore(s, pipeline, partition, learned, features)
            self.lru[s] = None
            restored += 1
        self.restores.inc(restored)
        took = time.perf_counter() - started
        self.slowest_restore_s = max(self.slowest_restore_s, took)
        if took > 1.0:
            log.info("restored %d evicted streams in %.2fs", restored, took)
        return restored

    def free_capacity(self) -> int:
        """Streams that fit in memory before the cap is reached."""
        return max(0, self.cap - len(self.scorer.pipelines))

    def plan(self, partition: int, offsets: Mapping[str, int], loaded: Iterable[str]) -> None:
        """On assignment: index a partition's checkpointed streams that stay out of memory.

        ``offsets`` maps stream -> offset of its latest checkpoint record; ``loaded`` are the
        ones being restored now (the newest :meth:`free_capacity` of them).
        """
        keep = set(loaded)
        for s, offset in offsets.items():
            if s not in keep:
                self.index[s] = _pack(partition, offset)

    def forget_partitions(self, partitions: set[int]) -> None:
        """A revoked partition's evicted streams belong to its next owner now."""
        for s in [s for s, e in self.index.items() if e & _PART_MASK in partitions]:
            del self.index[s]
        for s in [s for s in self.lru if s not in self.scorer.pipelines]:
            del self.lru[s]

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def _producer(self) -> Any:
        assert self.store is not None
        if self.store._producer is None:  # started lazily, like the store's own checkpoints
            await self.store.start()
        return self.store._producer

    async def _fetch_many(self, wanted: Mapping[str, int]) -> dict[str, bytes]:
        """The checkpoint records of ``wanted`` (stream -> packed index entry), read together.

        Each partition is read forward from its lowest wanted offset; a later record of the
        same stream (compaction may have removed the indexed one) is taken as well.
        """
        assert self.store is not None
        if self._consumer is None:
            conf = self.store.settings
            self._consumer = AIOKafkaConsumer(bootstrap_servers=conf.kafka_bootstrap,
                                              enable_auto_commit=False, fetch_max_wait_ms=50,
                                              **aiokafka_auth_kwargs(conf))
            await self._consumer.start()
        consumer = self._consumer
        topic = self.store.topic
        # partition -> {stream key: offset of its indexed record} still wanted
        todo: dict[TopicPartition, dict[bytes, int]] = {}
        for stream, entry in wanted.items():
            partition, offset = _unpack(entry)
            todo.setdefault(TopicPartition(topic, partition), {})[stream.encode("utf-8")] = offset
        consumer.assign(list(todo))
        for tp, keys in todo.items():
            consumer.seek(tp, min(keys.values()))
        found: dict[str, bytes] = {}
        deadline = time.monotonic() + FETCH_DEADLINE_S
        while todo and time.monotonic() < deadline:
            batch = await consumer.getmany(*todo, timeout_ms=500, max_records=2_000)
            for tp, msgs in batch.items():
                keys = todo[tp]
                for msg in msgs:
                    want = keys.get(msg.key) if msg.key is not None else None
                    if want is not None and msg.offset >= want and msg.value is not None:
                        found[msg.key.decode("utf-8")] = bytes(msg.value)  # type: ignore[union-attr]
                        del keys[msg.key]  # type: ignore[arg-type]
            for tp in list(todo):
                keys = todo[tp]
                if not keys:
                    del todo[tp]
                    continue
                position = await consumer.position(tp)
                lowest = min(keys.values())
                if lowest - position > SEEK_GAP:
                    consumer.seek(tp, lowest)  # skip records nobody in this batch needs
                elif not batch.get(tp) and position >= (consumer.highwater(tp) or 0) > lowest:
                    del todo[tp]  # read to the end without them: gone, they re-warm
        return found
