"""One delivery loop per sink, each with its own consumer group on ``pynomaly.alerts``.

Why not Faust agents on the app's consumer: every agent of a topic shares that consumer,
its offsets commit only when *all* agents acknowledged a record, and a full agent buffer
blocks the consumer loop that also scores. A sink that hangs would, after enough alert
records, hold back the other sinks' commits and then scoring itself.

Here each sink reads the alerts topic through its own aiokafka consumer in the group
``<app id>.notify.<sink>`` and commits its own offsets, and only for records the sink
accepted or that were dead-lettered (at-least-once: a crash replays at most the records
since the last commit, which the receivers see as duplicates of the same incident id or
PagerDuty dedup_key). A slow sink delays only itself; scoring, incidents and the other
sinks go on. Several workers split each sink group's partitions between them.

A new sink group (a sink enabled for the first time, or the upgrade from the shared Faust
agents) starts where the app's own group stopped reading the alerts topic, else with the
records of the last ``new_sink_lookback_s`` (default 600 s) before this worker started, and commits
that position at once: enabling Slack on a deployment a month old must not replay a
month of alerts to people, but what was written while the workers started is delivered.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import CommitFailedError, KafkaError

from sinks.delivery import Delivery
from streams.alerting.notify import Notifier
from streams.alerting.producer import AlertProducer
from streams.kafka_auth import aiokafka_auth_kwargs
from streams.metrics import Metrics
from streams.settings import Settings

log = logging.getLogger(__name__)

COMMIT_EVERY_S = 1.0  # commit at least this often while a long batch is delivered
MAX_RECORDS = 50


def deadletter(reason: str, message: str, raw: bytes | None, msg: Any, **extra: Any) -> bytes:
    doc = {"reason": reason, "message": message,
           "raw_b64": base64.b64encode(raw[:65536]).decode() if raw else None,
           "source": {"topic": msg.topic, "partition": msg.partition, "offset": msg.offset}, **extra}
    return orjson.dumps(doc)


def group_id(settings: Settings, sink: str) -> str:
    return f"{settings.app_id}.notify.{sink}"


class _StartWhereTheAppStopped(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: SinkWorker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: Any) -> None:
        # Called before every (re)join: hold deliveries until the new assignment's starting
        # points are decided (the fetcher may already hold records from before them).
        self.worker.gate.clear()
        await self.worker.commit()  # what was delivered stays delivered for the next owner
        for tp in revoked:  # if it comes back, the next owner's commits are newer than ours
            self.worker.done.pop(tp, None)
            self.worker.committed.pop(tp, None)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        try:
            await self.worker.seek_new_partitions(list(assigned))
        finally:
            self.worker.gate.set()


class SinkWorker:
    def __init__(self, settings: Settings, name: str, delivery: Delivery, notifier: Notifier,
                 metrics: Metrics, producer: AlertProducer, lookback_s: float = 600.0) -> None:
        self.settings, self.name = settings, name
        self.delivery, self.notifier, self.metrics, self.producer = delivery, notifier, metrics, producer
        self.consumer: AIOKafkaConsumer | None = None
        self.done: dict[TopicPartition, int] = {}  # next offset to commit, per partition
        self.committed: dict[TopicPartition, int] = {}
        self.started_at = time.time()  # Kafka record timestamps are wall-clock
        self.lookback_s = lookback_s
        self.gate = asyncio.Event()  # set while the assignment's starting points are decided
        self.floor: dict[TopicPartition, int] = {}  # a new group's first offset per partition

    async def run(self) -> None:
        """Consume, deliver, commit; until cancelled (worker shutdown)."""
        s = self.settings
        while True:
            try:
                await self._run_once(s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a broker hiccup: start over from the committed offsets
                log.warning("notify-%s: %s; reconnecting in 2 s", self.name, type(exc).__name__)
                self.notifier.reset()  # what comes again must be sent again
                await asyncio.sleep(2.0)

    async def _run_once(self, s: Settings) -> None:
        await self.producer.start()  # dead letters and the kafka sink
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=s.kafka_bootstrap, group_id=group_id(s, self.name),
            enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=MAX_RECORDS,
            session_timeout_ms=int(s.session_timeout_s * 1000),
            heartbeat_interval_ms=int(s.heartbeat_interval_s * 1000),
            # one slow notification may take the delivery deadline; staying in the group
            # through it avoids a rebalance that would replay the batch elsewhere
            max_poll_interval_ms=3_600_000, **aiokafka_auth_kwargs(s))
        await self.consumer.start()
        self.consumer.subscribe([s.topic_alerts], listener=_StartWhereTheAppStopped(self))
        self.done.clear()
        self.committed.clear()
        try:
            while True:
                batch = await self.consumer.getmany(timeout_ms=1000, max_records=MAX_RECORDS)
                await self.gate.wait()
                last_commit = time.monotonic()
                for tp, msgs in batch.items():
                    for msg in msgs:
                        if msg.offset < self.floor.get(tp, 0):
                            continue  # fetched before a new group's starting point was set
                        await self.handle(msg)
                        self.done[tp] = msg.offset + 1
                        if time.monotonic() - last_commit >= COMMIT_EVERY_S:
                            await self.commit()
                            last_commit = time.monotonic()
                await self.commit()
        finally:
            consumer, self.consumer = self.consumer, None
            try:
                await self._commit(consumer)
            finally:
                await consumer.stop()

    async def commit(self) -> None:
        if self.consumer is not None:
            await self._commit(self.consumer)

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        todo = {tp: o for tp, o in self.done.items()
                if self.committed.get(tp) != o and tp in consumer.assignment()}
        if not todo:
            return
        try:
            await consumer.commit(todo)
            self.committed.update(todo)
        except (CommitFailedError, KafkaError) as exc:  # a rebalance: the records come again
            log.info("notify-%s: commit skipped (%s); records since the last commit are redelivered",
                     self.name, type(exc).__name__)

    async def seek_new_partitions(self, assigned: list[TopicPartition]) -> None:
        consumer = self.consumer
        if consumer is None or not assigned:
            return
        fresh = [tp for tp in assigned if await consumer.committed(tp) is None]
        if not fresh:
            return
        start = await self._app_group_offsets(fresh)
        rest = [tp for tp in fresh if tp not in start]
        if rest:
            since = int((self.started_at - self.lookback_s) * 1000)
            try:
                found = await consumer.offsets_for_times({tp: since for tp in rest})
                ends = await consumer.end_offsets(rest)
            except KafkaError as exc:  # from the beginning, as Kafka's default would
                log.warning("notify-%s: cannot look up offsets by time (%s); starting from the "
                            "beginning", self.name, type(exc).__name__)
                found, ends = {}, {}
            for tp in rest:
                hit = found.get(tp)
                if tp in ends:  # nothing that recent (Tansu answers timestamp -1): from the end
                    start[tp] = hit.offset if hit is not None and hit.timestamp >= 0 else ends[tp]
        if start:
            log.info("notify-%s: new consumer group starts at %s", self.name,
                     ", ".join(f"{tp.partition}:{o}" for tp, o in sorted(start.items())))
        for tp, offset in start.items():
            consumer.seek(tp, offset)
            self.done[tp] = self.floor[tp] = offset
        await self.commit()  # a crash before the first delivery keeps this starting point

    async def _app_group_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        """Offsets the app's own group committed on the alerts topic (the pre-upgrade readers)."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.kafka_bootstrap,
                                    **aiokafka_auth_kwargs(self.settings))
        try:
            await admin.start()
            got = await admin.list_consumer_group_offsets(self.settings.app_id, partitions=tps)
            return {tp: meta.offset for tp, meta in got.items() if meta is not None and meta.offset >= 0}
        except Exception as exc:  # no such group, or a broker without the API: from the start
            log.debug("notify-%s: no earlier offsets (%s)", self.name, type(exc).__name__)
            return {}
        finally:
            await admin.close()

    async def handle(self, msg: Any) -> None:
        """Deliver one alert record; returns once it was accepted or dead-lettered."""
        s = self.settings
        try:
            rec = orjson.loads(msg.value or b"null")
            plans = [n for sink, n in self.notifier.plan(rec) if sink == self.name] \
                if isinstance(rec, dict) else []
        except Exception as exc:  # any malformed record (e.g. contributions [1]): raised, it
            # would make the worker reconnect and replay the same record forever
            self.metrics.errors.labels(component="notify").inc()
            await self.producer.publish([(s.topic_deadletter, None, deadletter(
                "bad_alert_record", f"{type(exc).__name__}: {exc}"[:300], msg.value, msg, sink=self.name))])
            return
        for n in plans:
            outcome = await self.delivery.deliver(n)
            if not outcome.delivered:
                err = outcome.error.message if outcome.error else "unknown"
                await self.producer.publish([(s.topic_deadletter, n.incident_id.encode(), deadletter(
                    f"sink_{outcome.reason}", err, None, msg, sink=self.name,
                    notification=n.as_dict()))])  # dead-lettered before the offset may commit
