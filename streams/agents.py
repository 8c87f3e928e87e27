"""Faust agents. The score agent takes events in batches and produces outputs per batch.

Offsets commit only after outputs are written: a batch's messages are acked (made
committable) only after every output of the batch has been acknowledged by the broker.

Faust still owns the consumer group, partition assignment, commits and the web server,
but the events topic bypasses its per-message delivery (a task, a queue hop and an
Event per message cost ~200 µs): :func:`install_batch_drain` hands each fetched batch
straight to the scorer, and :class:`BatchProducer` writes one record batch per output
partition instead of one future per record. Messages of other topics (alerting agents)
still take Faust's ordinary path.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import faust
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from faust.types.tuples import ack_lock
from mode.utils.futures import notify

from streams.scoring import BatchOutput, BatchScorer, Output, RawRecord

if TYPE_CHECKING:
    from streams.app import Runtime

log = logging.getLogger(__name__)

BatchHandler = Callable[[Sequence[Any]], Awaitable[None]]

# Faust hard-codes fetch_max_wait_ms=1500. A broker that holds a fetch for the full wait
# when it started without data (Tansu does) then adds up to 1.5 s of latency per fetch;
# 100 ms bounds that and costs an empty fetch per 100 ms when idle.
FETCH_MAX_WAIT_MS = 100


# Record batches of up to 256 KiB (aiokafka's own are 16 KiB): one produce round trip per
# partition per scoring batch, well under the 1 MiB default request and message limits.
BATCH_BYTES = 256 * 1024


# Keys whose partition is remembered per topic (~100 B each); past this the cache restarts.
PARTITION_CACHE_KEYS = 200_000


def _new_batch(producer: Any) -> BatchBuilder:
    acc = producer._message_accumulator
    if acc._txn_manager is not None:  # transactional producers need their own builders
        return producer.create_batch()
    size = min(BATCH_BYTES, producer._max_request_size // 2)
    return BatchBuilder(size, acc._compression_type, is_transactional=False)


class BatchProducer:
    """Appends a batch's outputs to one aiokafka record batch per partition and sends each
    with ``send_batch``: one future per (partition, 256 KiB) instead of one per record."""

    def __init__(self, app: faust.App) -> None:
        self.app = app
        # topic -> (partition count, key -> partition); murmur2 in Python costs ~4 µs a key.
        self._partitions: dict[str, tuple[int, dict[bytes | None, int]]] = {}

    async def _partitioner(self, producer: Any, topic: str) -> tuple[list[int], dict[bytes | None, int]]:
        await producer.client._wait_on_metadata(topic)
        all_parts = sorted(producer._metadata.partitions_for_topic(topic))
        cached = self._partitions.get(topic)
        if cached is None or cached[0] != len(all_parts):
            cached = self._partitions[topic] = (len(all_parts), {})
        return all_parts, cached[1]

    async def send(self, topic: str, records: Sequence[Output]) -> list[asyncio.Future[Any]]:
        if not records:
            return []
        producer = self.app.producer._ensure_producer()  # type: ignore[attr-defined]
        all_parts, cache = await self._partitioner(producer, topic)
        partitioner = producer._partitioner
        by_part: dict[int, list[Output]] = {}
        if len(cache) > PARTITION_CACHE_KEYS:
            cache.clear()  # bounded: millions of distinct keys must not grow it forever
        for rec in records:
            key = rec[0]
            p = cache.get(key) if key is not None else None
            if p is None:
                p = partitioner(key, all_parts, all_parts)
                if key is not None:
                    cache[key] = p
            by_part.setdefault(p, []).append(rec)
        futures: list[asyncio.Future[Any]] = []
        max_request = producer._max_request_size
        for p, recs in by_part.items():
            batch = _new_batch(producer)
            for key, value in recs:
                if len(value) + (len(key) if key else 0) > max_request // 2:
                    _check_size(key, value, max_request)
                if batch.append(key=key, value=value, timestamp=None) is None:
                    futures.append(await producer.send_batch(batch, topic, partition=p))
                    batch = _new_batch(producer)
                    if batch.append(key=key, value=value, timestamp=None) is None:
                        # Larger than a whole batch: the ordinary path splits or rejects it.
                        futures.append(await producer.send(topic, value, key=key, partition=p))
                        batch = _new_batch(producer)
            if batch.record_count():
                futures.append(await producer.send_batch(batch, topic, partition=p))
        return futures


def _check_size(key: bytes | None, value: bytes, max_request: int) -> None:
    """Reject a record over the max request size as producer.send (and the broker) would:
    a batch's first record is appended whatever its size, so send_batch would not."""
    size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, [])
    if size > max_request:
        raise MessageSizeTooLargeError(
            f"an output record is {size} bytes, over max_request_size={max_request}")


async def produce_batch(app: faust.App, runtime: Runtime, out: BatchOutput,
                        producer: BatchProducer | None = None) -> int:
    """Hand every output to the producer at once, then wait for all acknowledgements."""
    s = runtime.settings
    sender = producer or BatchProducer(app)
    pending: list[asyncio.Future[Any]] = []
    n = 0
    for topic, records in (
        (s.topic_scores, out.scores),
        (s.topic_anomalies, out.anomalies),
        (s.topic_deadletter, out.deadletters),
        (s.topic_events, out.forwards),
    ):
        n += len(records)
        pending.extend(await sender.send(topic, records))
    if pending:
        await asyncio.gather(*pending)
    return n


def install_batch_drain(app: faust.App, topic: str, handle: BatchHandler, max_batch: int) -> None:
    """Make the app's consumer hand fetched batches of ``topic`` to ``handle``.

    Replaces the consumer's ``_drain_messages`` (run by Faust's Fetcher) when the consumer
    is created; the loop mirrors Faust's own (read offsets, gaps, commit_every, stop
    flags) but calls each topic's handler once per batch and acks the batch's messages
    afterwards. Several topics may be registered (scoring, incidents); others keep
    Faust's ordinary per-message path.
    """
    handlers: dict[str, BatchHandler] | None = getattr(app, "_pynomaly_batch_handlers", None)
    if handlers is not None:
        handlers[topic] = handle
        return
    handlers = {topic: handle}
    app._pynomaly_batch_handlers = handlers  # type: ignore[attr-defined]

    def patch(consumer: Any) -> Any:
        consumer._drain_messages = _batch_drain(consumer, handlers, max_batch)
        return consumer

    if app._consumer is not None:  # type: ignore[attr-defined]
        patch(app._consumer)  # type: ignore[attr-defined]
        return
    new_consumer = app._new_consumer  # type: ignore[attr-defined]
    app._new_consumer = lambda: patch(new_consumer())  # type: ignore[attr-defined,method-assign]


def _batch_drain(consumer: Any, handlers: dict[str, BatchHandler],
                 max_batch: int) -> Callable[[Any], Awaitable[None]]:
    async def drain(fetcher: Any) -> None:
        callback = consumer.callback
        consumer_should_stop = consumer._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        read_offset = consumer._read_offset
        acks_enabled_for = consumer.app.topics.acks_enabled_for
        to_message = consumer._to_message
        monitor = consumer.app.monitor
        commit_every = consumer._commit_every
        # Commit from this loop too, not only from Faust's timer: the timer starves while
        # batches keep the event loop busy, and a kill then replays everything since.
        commit_interval = consumer.commit_interval
        last_commit = time.monotonic()
        # Start-up objects (modules, app, settings) never die: keep them out of every
        # collection, and collect young objects less often (a batch allocates thousands).
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 50, 100)
        _shorten_fetch_wait(consumer, FETCH_MAX_WAIT_MS)
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                await asyncio.sleep(0)
                if consumer.should_stop:
                    break
                # Faust's getmany without its per-record work (a ConsumerMessage, a high
                # watermark lookup and a generator step each): records of our topics go to
                # their handler as aiokafka records, a fetched batch at a time.
                records, active = await consumer._wait_next_records(1.0)
                if not records or consumer.should_stop:
                    continue
                if not consumer.flow_active:  # as Faust's getmany: drop them, seek back
                    try:
                        await consumer.perform_seek()
                    except Exception as exc:
                        log.warning("seek while flow is paused failed: %r", exc)
                    continue
                generation = consumer.app.consumer_generation_id
                batches: dict[str, list[Any]] = {}
                tps: dict[tuple[str, int], Any] = {}
                for tp, recs in records.items():
                    if (active is not None and tp not in active
                            and tp not in consumer._buffered_partitions):
                        continue
                    monitor.track_tp_end_offset(tp, consumer.highwater(tp))
                    handled = tp.topic in handlers
                    gaps = acks_enabled_for(tp.topic)
                    if handled:
                        tps[(tp.topic, tp.partition)] = tp
                        batch = batches.setdefault(tp.topic, [])
                    for record in recs:
                        offset = record.offset
                        r_offset = read_offset[tp]
                        if r_offset is not None and offset < r_offset:
                            continue  # already read (Faust drops these too)
                        if r_offset and offset - r_offset > 1 and gaps:
                            await consumer._add_gap(tp, r_offset + 1, offset)
                        read_offset[tp] = offset
                        if handled:
                            batch.append(record)
                        else:
                            await consumer.wait_first(callback(to_message(tp, record)),
                                                      consumer.suspend_flow.wait())
                for topic, batch in batches.items():
                    handle = handlers[topic]
                    for i in range(0, len(batch), max_batch):
                        if (consumer.app.consumer_generation_id != generation
                                or not consumer.flow_active):
                            break  # rebalancing: the partitions' owner fetches the rest
                        part = batch[i: i + max_batch]
                        await handle(part)
                        _ack_records(consumer, tps, part)
                if consumer._n_acked and (
                        (commit_every is not None and consumer._n_acked >= commit_every)
                        or time.monotonic() - last_commit >= commit_interval):
                    consumer._n_acked = 0
                    last_commit = time.monotonic()
                    await consumer.commit()
        except consumer.consumer_stopped_errors:
            if consumer.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if consumer.transport.app.should_stop:
                return
            raise
        except Exception:
            log.exception("scoring batch drain failed; the worker stops fetching")
            raise

    return drain


def _ack_records(consumer: Any, tps: dict[tuple[str, int], Any], records: Sequence[Any]) -> None:
    """Faust's ``Consumer.ack`` for a handled batch, without a message object per record:
    the offsets become committable (the commit takes the contiguous acked run)."""
    committed_offsets = consumer._committed_offset
    acked_index_of = consumer._acked_index
    acked_of = consumer._acked
    acks_enabled_for = consumer.app.topics.acks_enabled_for
    n = 0
    with ack_lock:
        for record in records:
            tp = tps[(record.topic, record.partition)]
            if not acks_enabled_for(tp.topic):
                continue
            offset = record.offset
            committed = committed_offsets[tp]
            if committed is None or offset >= committed:
                acked_index = acked_index_of[tp]
                if offset not in acked_index:
                    acked_index.add(offset)
                    acked_of[tp].append(offset)
                    n += 1
        consumer._n_acked += n
    notify(consumer._waiting_for_ack)


def _shorten_fetch_wait(consumer: Any, max_wait_ms: int) -> None:
    """Set the fetch wait of the aiokafka consumer inside Faust's consumer thread."""
    try:
        consumer._thread._consumer._fetcher._fetch_max_wait_ms = max_wait_ms
    except AttributeError:  # another Faust transport or version: keep its default
        log.debug("cannot shorten the fetch wait of %r", consumer)


class _Record(NamedTuple):
    """The fields of an aiokafka ``ConsumerRecord`` that handlers read."""

    topic: str
    partition: int
    offset: int
    timestamp: int | None  # milliseconds
    key: bytes | None
    value: bytes | None


def _as_record(message: Any) -> _Record:
    """A Faust message as the drain's aiokafka records look (timestamp in milliseconds)."""
    ts = message.timestamp
    return _Record(message.topic, message.partition, message.offset,
                   int(ts * 1000) if ts else None, message.key, message.value)


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
    producer = BatchProducer(app)

    if checkpoints is not None:
        store = checkpoints

        @app.timer(max(0.5, s.checkpoint_interval_s / 2))
        async def checkpoint_when_idle() -> None:
            await store.maybe_checkpoint()

    async def process(messages: Sequence[Any]) -> None:
        """Score one batch of consumer messages and wait until its outputs are acknowledged."""
        started = time.perf_counter()
        if checkpoints is not None:
            # A stream's state must be back before its partition's first event is scored.
            await checkpoints.ensure_restored({msg.partition for msg in messages})
        # aiokafka records from the batch drain: timestamps in milliseconds.
        records = [RawRecord(msg.key, msg.value, msg.timestamp, msg.topic, msg.partition, msg.offset)
                   for msg in messages]
        if checkpoints is None:
            await produce_batch(app, runtime, batch_scorer.run(records), producer)
        else:
            async with checkpoints.batch_lock:
                try:
                    await produce_batch(app, runtime, batch_scorer.run(records), producer)
                except BaseException:
                    # Learned, maybe not acknowledged: no mark or checkpoint may claim it.
                    checkpoints.batch_failed()
                    raise
        batch_duration.observe(time.perf_counter() - started)
        if checkpoints is not None:
            await checkpoints.maybe_checkpoint()

    install_batch_drain(app, s.topic_events, process, s.batch_max_events)

    @app.agent(events, name="score")
    async def score(stream: faust.StreamT[bytes]) -> None:
        # The agent subscribes the topic; the batch drain delivers its messages. Were any
        # delivered the ordinary way, they are scored here just the same. take_events is
        # on the concrete Stream; the StreamT protocol lacks it.
        batches = cast(faust.Stream[bytes], stream).take_events
        async for batch in batches(s.batch_max_events, s.batch_within_s):
            # Faust messages carry seconds; the drain's records carry milliseconds.
            await process([_as_record(ev.message) for ev in batch])
