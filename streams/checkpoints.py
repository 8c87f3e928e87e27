"""Per-stream detector state, checkpointed to a compacted Kafka topic and restored on assignment.

Partition p of the state topic holds the streams of events partition p, so state follows
its partition. Each value is pickled state signed with HMAC-SHA256: unsigned or tampered
bytes are rejected before anything is unpickled, and that stream re-warms.

A checkpoint is written only after the outputs of the events it covers were acknowledged,
and it records the last events offset learned per stream. After a crash the replacement
restores it and skips replayed events at or below that offset: their scored records were
already written, and learning them twice would change the model.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.compacted import log_end, read_to_end, restore_consumer_kwargs
from streams.kafka_auth import aiokafka_auth_kwargs
from streams.metrics import Metrics
from streams.scoring import StreamScorer
from streams.settings import Settings
from streams.state_format import (  # the state topic's format, re-exported
    MAGIC,
    PROGRESS_KEY,
    CheckpointSignatureError,
    dump_state,
    load_state,
    progress_payload,
    sign,
    state_key,
    verify,
)

if TYPE_CHECKING:
    from streams.eviction import StreamEvictor

log = logging.getLogger(__name__)

__all__ = ["MAGIC", "PROGRESS_KEY", "CheckpointSignatureError", "CheckpointStore", "dump_state", "load_state",
           "sign", "state_key", "verify"]

# How long a batch yields for its progress marks to be written to the socket.
MARK_SEND_S = 0.001


class CheckpointStore:
    """Writes dirty streams' state at a cadence; restores a partition's streams on first use."""

    def __init__(
        self,
        settings: Settings,
        scorer: StreamScorer,
        metrics: Metrics,
        key: bytes,
        clock: Callable[[], float] = time.monotonic,
        executor: Executor | None = None,
    ) -> None:
        self.executor = executor
        self.settings = settings
        self.scorer = scorer
        self.metrics = metrics
        self.key = key
        self.clock = clock
        self.topic = settings.topic_state
        self.events_topic = settings.topic_events
        self.restored: set[int] = set()
        self._restoring: dict[int, asyncio.Task[int]] = {}
        self._last = clock()
        self._producer: AIOKafkaProducer | None = None
        # Set when max_streams_in_memory caps the streams in memory (streams/eviction.py).
        self.evictor: StreamEvictor | None = None
        self._marked: dict[int, int] = {}  # progress marks written: partition -> offset
        # events partition -> its log end when restored, where a restored offset was checked
        self.log_ends: dict[int, int] = {}
        self._failed = False  # a batch failed after learning: see batch_failed
        # Pause detection (a "zombie" stopped past its session timeout, then resumed): the
        # group gave its partitions to a successor, whose state must not be overwritten.
        self._seen: float | None = None  # last tick, once the worker's timer ticks
        self._paused_at: float | None = None
        # Held while a batch is scored and its outputs produced: a checkpoint must never
        # cover events whose outputs are not yet acknowledged.
        self.batch_lock = asyncio.Lock()

    async def start(self) -> None:
        # Records go out in ordinary multi-record batches: restores read to the fetch
        # high watermark (streams.compacted), which the dev broker reports correctly.
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap, linger_ms=5, acks="all",
            max_request_size=self.settings.producer_max_request_bytes,
            **aiokafka_auth_kwargs(self.settings),
        )
        await self._producer.start()

    async def stop(self) -> None:
        try:
            await self.checkpoint()
        except Exception as exc:  # the producer must still be stopped
            log.warning("final checkpoint failed (%s: %s)", type(exc).__name__, str(exc)[:200])
        if self.evictor is not None:
            await self.evictor.stop()
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def maybe_checkpoint(self) -> int:
        """Checkpoint if the cadence is due; called between batches and by a timer when idle.

        Marks progress first, every time: that is what keeps a killed worker's replacement
        from writing the last batch's outputs again.
        """
        await self.mark_progress()
        if self.clock() - self._last < self.settings.checkpoint_interval_s:
            return 0
        try:
            return await self.checkpoint()
        except Exception as exc:
            # The batch's outputs are acknowledged: failing it now would replay it (and, for a
            # state over the request size, fail every retry the same way). The streams stay
            # dirty and are tried again; a crash meanwhile re-warms from older state.
            log.warning("checkpoint failed (%s: %s); retried at the next interval",
                        type(exc).__name__, str(exc)[:200])
            return 0

    def tick(self, timer: bool = False) -> bool:
        """Called often (a timer, every write): False while writes are held after a pause.
        Pauses are watched once the worker's timer (``timer=True``) has ticked.

        A gap longer than the session timeout means this process did not run meanwhile
        (SIGSTOP, a frozen VM): the group has likely handed its partitions to another
        worker, which wrote newer state. Writes are held until the next assignment
        (:meth:`reassigned`), or, if none comes (the membership survived), for two session
        timeouts.
        """
        if self._seen is None and not timer:
            return True
        now = self.clock()
        gap, self._seen = now - (now if self._seen is None else self._seen), now
        timeout = self.settings.session_timeout_s
        if gap > timeout:
            self._paused_at = now
            log.warning("this worker did not run for %.1fs (> session timeout %.1fs): no state "
                        "writes until the group confirms its partitions", gap, timeout)
        elif self._paused_at is not None and now - self._paused_at > 2 * timeout:
            self._paused_at = None
            log.info("no rebalance followed the pause: state writes resume")
        return self._paused_at is None

    @property
    def paused(self) -> bool:
        return self._paused_at is not None

    async def reassigned(self, owned: set[int]) -> None:
        """After a pause, a new assignment: everything in memory may be older than what a
        successor wrote meanwhile, so it is dropped and restored from the state topic."""
        if self._paused_at is None:
            return
        self._paused_at = None
        log.warning("partitions %s: dropping in-memory state after the pause; restoring it", sorted(owned))
        self._drop(owned)

    def batch_failed(self) -> None:
        """A batch raised after its events were learned but maybe before all its outputs
        were acknowledged: from now on no checkpoint or mark may be written (they would
        claim those events, and a replacement would skip them: data loss). The worker is
        going down; its replacement replays from the last commit."""
        if not self._failed:
            log.warning("a scoring batch failed: no more checkpoints from this worker")
        self._failed = True

    async def mark_progress(self) -> int:
        """Write, per events partition, the offset up to which every output is acknowledged.

        One small signed record per partition that moved, right after a batch: a worker
        killed between its outputs and its offset commit (on Tansu a commit takes 0.1-0.35 s)
        would otherwise have the whole batch scored again by its replacement. The mark is
        taken under the batch lock, so it never covers unacknowledged outputs.
        """
        if self._failed or not self.tick():
            return 0
        async with self.batch_lock:
            moved = {p: o for p, o in self.scorer.progress.items() if self._marked.get(p) != o}
        if not moved:
            return 0
        try:
            if self._producer is None:
                await self.start()
            producer = self._producer
            assert producer is not None
            pending = []
            for p, o in moved.items():
                # A closed batch of its own goes out at once, without the producer's linger.
                batch = producer.create_batch()
                batch.append(key=PROGRESS_KEY, value=sign(progress_payload(self.events_topic, p, o), self.key),
                             timestamp=None)
                pending.append(await producer.send_batch(batch, self.topic, partition=p))
            # Let the sender write the request before the next batch's scoring holds the
            # event loop; the acknowledgement itself is not awaited (a round trip per batch).
            await asyncio.sleep(MARK_SEND_S)
        except Exception as exc:  # only costs duplicates after a crash: do not fail the batch
            log.warning("could not mark progress of partitions %s: %r", sorted(moved), exc)
            return 0
        self._marked.update(moved)
        asyncio.gather(*pending).add_done_callback(functools.partial(self._mark_failed, moved))
        return len(moved)

    def _mark_failed(self, moved: dict[int, int], done: asyncio.Future[Any]) -> None:
        if done.cancelled() or done.exception() is None:
            return
        log.warning("could not mark progress of partitions %s: %r", sorted(moved), done.exception())
        for p, o in moved.items():  # written again after the next batch
            if self._marked.get(p) == o:
                del self._marked[p]

    async def checkpoint(self, partitions: Iterable[int] | None = None) -> int:
        """Write the state of every dirty stream (of ``partitions``, if given).

        Only the snapshot is taken under the batch lock (so it never covers events whose
        outputs are unacknowledged); the writes are awaited outside it, so scoring goes on
        meanwhile. A stream's checkpoints go to one partition in order: a later snapshot
        cannot be overtaken by an earlier one.
        """
        self._last = self.clock()
        if self._failed or not self.tick():
            return 0
        started = time.perf_counter()
        async with self.batch_lock:
            snapshot = self._snapshot(partitions)
        if not snapshot:
            return 0
        if self._producer is None:
            await self.start()
        producer = self._producer
        assert producer is not None
        try:
            pending = [
                await producer.send(self.topic, blob, key=stream.encode(), partition=partition)
                for stream, partition, blob in snapshot
            ]
            await asyncio.gather(*pending)
        except Exception:
            self.scorer.dirty.update(stream for stream, _, _ in snapshot)  # retried next time
            self.metrics.checkpoint_writes.labels("error").inc(len(snapshot))
            raise
        self.metrics.checkpoint_writes.labels("ok").inc(len(snapshot))
        self.metrics.checkpoint_duration.observe(time.perf_counter() - started)
        return len(snapshot)

    def _snapshot(self, partitions: Iterable[int] | None) -> list[tuple[str, int, bytes]]:
        """Signed state of the dirty streams; clears their dirty marks."""
        wanted = None if partitions is None else set(partitions)
        scorer = self.scorer
        out = []
        too_large: list[int] = []
        for stream in list(scorer.dirty):
            partition, offset = scorer.owner[stream]
            if wanted is not None and partition not in wanted:
                continue
            scorer.dirty.discard(stream)
            pipeline = scorer.pipelines.get(stream)
            if pipeline is None:
                continue
            blob = dump_state(self.key, self.events_topic, partition, stream, offset, pipeline,
                              scorer.features.get(stream))
            if len(blob) + len(stream.encode()) > self.settings.max_output_bytes:
                # Kafka would refuse it, and one refused send fails every write of the
                # snapshot: count it and leave this stream to re-warm after a restart.
                too_large.append(len(blob))
                continue
            out.append((stream, partition, blob))
        if too_large:
            self.metrics.checkpoint_writes.labels("too_large").inc(len(too_large))
            log.warning("%d stream state(s) exceed the producer's request size (largest %d bytes, "
                        "limit %d): not checkpointed, so they re-warm after a restart; raise "
                        "producer_max_request_bytes (and the topic's max.message.bytes) or send "
                        "fewer features per stream", len(too_large), max(too_large),
                        self.settings.max_output_bytes)
        return out

    def prefetch(self, partitions: Iterable[int]) -> None:
        """Start restoring ``partitions`` in the background (called on assignment), so the
        first batch of each rarely waits, and never for another partition's restore."""
        for p in partitions:
            if p not in self.restored and p not in self._restoring:
                self._restoring[p] = asyncio.ensure_future(self._restore(p))

    async def ensure_restored(self, partitions: Iterable[int]) -> None:
        """Wait until ``partitions`` are restored; their restores run concurrently."""
        missing = [p for p in partitions if p not in self.restored]
        if not missing:
            return
        self.prefetch(missing)
        tasks = [self._restoring[p] for p in missing]
        try:
            await asyncio.gather(*tasks)
        finally:
            for p, task in zip(missing, tasks, strict=True):
                if task.done():  # failed restores are dropped, so the next batch retries
                    self._restoring.pop(p, None)
                    if not task.cancelled() and task.exception() is None:
                        self.restored.add(p)

    async def _restore(self, partition: int) -> int:
        started = time.perf_counter()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap, **restore_consumer_kwargs(),
            **aiokafka_auth_kwargs(self.settings),
        )
        await consumer.start()
        tp = TopicPartition(self.topic, partition)
        # Stream -> offset of its latest record; only the newest ``limit`` values are kept
        # (the rest are indexed by the evictor and read on demand), so a state partition of
        # millions of evicted streams does not come back into memory whole.
        limit = None if self.evictor is None else self.evictor.free_capacity()
        mark: bytes | None = None
        offsets: dict[str, int] = {}
        latest: collections.OrderedDict[str, bytes] = collections.OrderedDict()
        try:
            consumer.assign([tp])
            async for msg in read_to_end(consumer, tp):
                if msg.key == PROGRESS_KEY:
                    mark = msg.value
                elif msg.key is not None and msg.value is not None:
                    stream = msg.key.decode("utf-8", "replace")
                    offsets[stream] = msg.offset
                    latest[stream] = msg.value
                    latest.move_to_end(stream)
                    if limit is not None and len(latest) > limit:
                        latest.popitem(last=False)
            loaded: list[tuple[str, int, Any, list[str] | None]] = []
            for stream, blob in latest.items():
                try:
                    offset, pipeline, features = load_state(blob, self.key, self.events_topic,
                                                            partition, stream)
                except CheckpointSignatureError as exc:
                    self.metrics.checkpoint_restores.labels("rejected").inc()
                    log.warning("rejected checkpoint of a stream on partition %d: %s; it re-warms",
                                partition, exc)
                    continue
                loaded.append((stream, offset, pipeline, features))
            mark_offset = self._verify_mark(partition, mark)
            # Offsets past the events partition's end are of another incarnation of it (a
            # recreated topic, an offset reset, a failover to a mirror): taken as they are,
            # every new event below them would look replayed and get no score.
            highest = max([o for _, o, _, _ in loaded] + [-1 if mark_offset is None else mark_offset])
            end = await self._events_end(consumer, partition, highest) if highest >= 0 else 0
        finally:
            await consumer.stop()
        if highest >= 0:
            self.log_ends[partition] = end
        if mark_offset is not None and mark_offset >= end:
            log.warning("partition %d: ignoring the progress mark at offset %d, above the log end "
                        "%d of %s (a recreated topic or an offset reset?)",
                        partition, mark_offset, end, self.events_topic)
            mark_offset = None
        if mark_offset is not None:
            self.scorer.emitted[partition] = mark_offset
            self._marked[partition] = mark_offset
            log.info("partition %d: outputs were written up to offset %d", partition, mark_offset)
        if self.evictor is not None:
            self.evictor.plan(partition, offsets, loaded=latest)
        restored = stale = 0
        for stream, offset, pipeline, features in loaded:
            if offset >= end:
                stale += 1
                offset = -1  # the model stays; no event of this partition is a replay of it
            bind = getattr(pipeline.detector, "bind", None)
            if bind is not None:  # windowed detectors need this worker's refit pool back
                bind(self.executor, None)
            self.scorer.restore(stream, pipeline, partition, offset, features)
            restored += 1
        if stale:
            log.warning("partition %d: %d checkpoints learned up to offsets above the log end %d "
                        "of %s; their offsets are ignored (a recreated topic or an offset reset?)",
                        partition, stale, end, self.events_topic)
        self.metrics.checkpoint_restores.labels("ok").inc(restored)
        log.info("restored %d streams of partition %d in %.3fs", restored, partition,
                 time.perf_counter() - started)
        return restored

    def _verify_mark(self, partition: int, mark: bytes | None) -> int | None:
        """The offset of the previous owner's progress mark, if genuine and this partition's:
        its replayed outputs are not written again."""
        if mark is None:
            return None
        try:
            words = verify(mark, self.key).split()
            offset = int(words[3])
            if words[:3] != [b"emitted", self.events_topic.encode("utf-8"), b"%d" % partition]:
                raise CheckpointSignatureError("progress mark of another partition or topic")
        except (CheckpointSignatureError, ValueError, IndexError) as exc:
            self.metrics.checkpoint_restores.labels("rejected").inc()
            log.warning("rejected progress mark of partition %d: %s", partition, exc)
            return None
        return offset

    async def _events_end(self, consumer: AIOKafkaConsumer, partition: int, highest: int) -> int:
        """The log end of events ``partition``; on error, past ``highest`` (trust the offsets)."""
        try:
            return await log_end(consumer, TopicPartition(self.events_topic, partition), highest)
        except Exception as exc:
            log.warning("could not read the log end of %s[%d]: %r; trusting restored offsets",
                        self.events_topic, partition, exc)
            return highest + 1

    async def on_revoked(self, partitions: set[int]) -> None:
        """Write the revoked partitions' state for their next owner, then drop it here."""
        try:
            await self.checkpoint(partitions)
        except Exception as exc:  # the next owner falls back to the previous checkpoint
            log.warning("could not checkpoint revoked partitions %s: %r", sorted(partitions), exc)
        self._drop(partitions)

    def _drop(self, partitions: set[int]) -> None:
        """Forget what is held for ``partitions``; they are restored from the topic if they
        come back."""
        self.scorer.forget_partitions(partitions)
        if self.evictor is not None:
            self.evictor.forget_partitions(partitions)
        for p in partitions:
            self._marked.pop(p, None)
            task = self._restoring.pop(p, None)
            if task is not None:
                task.cancel()  # a prefetch for a partition that moved on
        self.restored.difference_update(partitions)
