"""Output before commit, deterministically: the scoring batch path with held produce futures.

The worker's real batch path (``register_scoring``'s handler, ``produce_batch``,
``BatchProducer``, the batch drain, ``_ack_records``, the checkpoint store's
``mark_progress``/``batch_failed``) runs against fakes of the three Kafka clients it
talks to: a producer whose acknowledgements the test holds and releases, a consumer
that hands over one fetched batch and records acks and commits, and a state-topic
producer that records progress marks and checkpoints. While the outputs are
unacknowledged nothing may be acked, committed, marked or checkpointed; a batch whose
outputs fail may never be claimed by a mark or checkpoint (the replacement replays it).
"""

from __future__ import annotations

import asyncio
import gc
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.structs import TopicPartition
from prometheus_client import CollectorRegistry

from streams.agents import _Record, register_scoring
from streams.app import Runtime
from streams.checkpoints import PROGRESS_KEY, CheckpointStore
from streams.metrics import Metrics
from streams.scoring import StreamScorer, default_pipeline_factory
from streams.settings import Settings
from tests.support.waiting import async_wait_for

EVENTS = "t.events"
TP = TopicPartition(EVENTS, 0)
OFFSETS = [10, 11, 12]


class HeldProducer:
    """aiokafka's producer as BatchProducer uses it; every send's future is held."""

    def __init__(self) -> None:
        self.held: list[asyncio.Future[Any]] = []
        self.sent: list[tuple[str, int, int]] = []  # (topic, partition, records)
        self._message_accumulator = SimpleNamespace(_txn_manager=None, _compression_type=0)
        self._max_request_size = 1024 * 1024
        self._metadata = SimpleNamespace(partitions_for_topic=lambda topic: {0})
        self.client = SimpleNamespace(_wait_on_metadata=self._metadata_ready)

    async def _metadata_ready(self, topic: str) -> None:
        return None

    def _partitioner(self, key: bytes | None, all_parts: list[int], available: list[int]) -> int:
        return all_parts[0]

    async def send_batch(self, batch: BatchBuilder, topic: str, partition: int) -> asyncio.Future[Any]:
        self.sent.append((topic, partition, batch.record_count()))
        fut = asyncio.get_running_loop().create_future()
        self.held.append(fut)
        return fut

    def release(self) -> None:
        for fut in self.held:
            fut.set_result(None)

    def fail(self) -> None:
        for fut in self.held:
            fut.set_exception(KafkaTimeoutError("no acknowledgement from the broker"))


class StateProducer:
    """The checkpoint store's producer: records progress marks and checkpoints, acks at once."""

    def __init__(self) -> None:
        self.marks: list[int] = []  # partitions marked
        self.checkpoints: list[bytes] = []  # stream keys written

    async def stop(self) -> None:
        return None

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(16 * 1024, 0, is_transactional=False)

    def _done(self) -> asyncio.Future[Any]:
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    async def send_batch(self, batch: BatchBuilder, topic: str, partition: int) -> asyncio.Future[Any]:
        self.marks.append(partition)
        return self._done()

    async def send(self, topic: str, value: bytes, key: bytes, partition: int) -> asyncio.Future[Any]:
        assert key != PROGRESS_KEY
        self.checkpoints.append(key)
        return self._done()


class FakeConsumer:
    """The parts of Faust's consumer the batch drain reads and writes."""

    def __init__(self, app: Any, fetched: dict[TopicPartition, list[_Record]]) -> None:
        self.app = app
        self.callback = None
        self._to_message = None
        self._stopped = asyncio.Event()
        self.should_stop = False
        self.flow_active = True
        self._buffered_partitions: set[TopicPartition] = set()
        self._read_offset: dict[TopicPartition, int | None] = defaultdict(lambda: None)
        self._committed_offset: dict[TopicPartition, int | None] = defaultdict(lambda: None)
        self._acked_index: dict[TopicPartition, set[int]] = defaultdict(set)
        self._acked: dict[TopicPartition, list[int]] = defaultdict(list)
        self._n_acked = 0
        self._waiting_for_ack = None
        self._commit_every = None
        self.commit_interval = 0.0  # commit as soon as anything is acked
        self.consumer_stopped_errors = (ConnectionAbortedError,)
        self.transport = SimpleNamespace(app=SimpleNamespace(should_stop=False))
        self.commits: list[list[int]] = []  # the acked offsets at each commit
        self._fetches = [fetched]

    async def _wait_next_records(self, timeout: float) -> tuple[dict[Any, list[Any]], None]:
        if self._fetches:
            return self._fetches.pop(0), None
        await asyncio.sleep(0.01)  # an empty fetch
        return {}, None

    def highwater(self, tp: TopicPartition) -> int:
        return OFFSETS[-1] + 1

    async def _add_gap(self, tp: TopicPartition, start: int, end: int) -> None:
        return None

    async def commit(self) -> None:
        self.commits.append(list(self._acked[TP]))


class FakeApp:
    """What register_scoring and install_batch_drain use of a Faust app."""

    def __init__(self, producer: HeldProducer) -> None:
        self.producer = SimpleNamespace(_ensure_producer=lambda: producer)
        self.topics = SimpleNamespace(acks_enabled_for=lambda topic: True)
        self.monitor = SimpleNamespace(track_tp_end_offset=lambda tp, offset: None)
        self.consumer_generation_id = 1
        self.timers: list[Any] = []
        self._consumer: Any = None

    def topic(self, *args: Any, **kwargs: Any) -> str:
        return EVENTS

    def timer(self, interval: float) -> Any:
        def register(fn: Any) -> Any:
            self.timers.append(fn)
            return fn
        return register

    def agent(self, *args: Any, **kwargs: Any) -> Any:
        return lambda fn: fn


@pytest.fixture(autouse=True)
def _restore_gc():
    # The drain tunes the collector for a worker process; give the test process its own back.
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def build() -> SimpleNamespace:
    settings = Settings(topic_events=EVENTS, topic_scores="t.scores", topic_anomalies="t.anomalies",
                        topic_deadletter="t.deadletter", topic_state="t.state",
                        max_streams_in_memory=0, checkpoint_interval_s=3600.0, warmup_events=2)
    metrics = Metrics(CollectorRegistry())
    scorer = StreamScorer(default_pipeline_factory(settings))
    store = CheckpointStore(settings, scorer, metrics, key=b"k" * 32)
    state = StateProducer()
    store._producer = state  # type: ignore[assignment]
    store.restored.add(TP.partition)  # nothing to restore for this partition
    producer = HeldProducer()
    app = FakeApp(producer)
    records = [_Record(EVENTS, 0, o, 1_790_000_000_000 + o, b"s1", b'{"stream":"s1","value":%d}' % o)
               for o in OFFSETS]
    consumer = FakeConsumer(app, {TP: records})
    app._consumer = consumer
    register_scoring(app, Runtime(settings, CollectorRegistry(), metrics, scorer, store))  # type: ignore[arg-type]
    fetcher = SimpleNamespace(_stopped=asyncio.Event())
    drain = asyncio.ensure_future(consumer._drain_messages(fetcher))  # the patched drain
    return SimpleNamespace(producer=producer, consumer=consumer, state=state, store=store,
                           scorer=scorer, idle_checkpoint=app.timers[0], drain=drain,
                           registry=metrics.registry)


async def settle(rounds: int = 200) -> None:
    """Let every ready task run many times over: anything not blocked on the held futures
    gets the chance to run ahead (this is not a wait for time to pass)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


async def stop(w: SimpleNamespace) -> None:
    w.consumer._stopped.set()
    try:
        await asyncio.wait_for(w.drain, 5)
    except Exception:  # the failing case's drain raised already
        pass


async def test_batch_not_acked_until_produce_futures_resolve() -> None:
    w = build()
    await async_wait_for(lambda: w.producer.held, 5, "the batch's outputs to be sent")
    assert ("t.scores", 0, len(OFFSETS)) in w.producer.sent
    idle = asyncio.ensure_future(w.idle_checkpoint())  # the idle timer fires meanwhile
    await settle()
    assert w.consumer._acked[TP] == [] and w.consumer._n_acked == 0, "acked before outputs were acknowledged"
    assert w.consumer.commits == [], "committed before outputs were acknowledged"
    assert w.state.marks == [], "progress marked before outputs were acknowledged"
    assert w.state.checkpoints == [], "checkpoint written before outputs were acknowledged"
    assert not idle.done()  # the idle checkpoint waits for the batch instead of claiming it
    assert w.scorer.progress == {0: OFFSETS[-1]}  # learned: only the acknowledgements lack

    w.producer.release()
    await async_wait_for(lambda: w.consumer.commits, 5, "a commit once the outputs were acknowledged")
    assert w.consumer._acked[TP] == OFFSETS
    assert w.consumer.commits[0] == OFFSETS
    assert set(w.state.marks) == {0}  # events partition 0 is marked (the idle timer may mark too)
    await asyncio.wait_for(idle, 5)
    await stop(w)


async def test_failed_batch_writes_no_checkpoint_or_mark() -> None:
    w = build()
    await async_wait_for(lambda: w.producer.held, 5, "the batch's outputs to be sent")
    w.producer.fail()
    with pytest.raises(KafkaTimeoutError):  # the drain stops: the worker goes down
        await asyncio.wait_for(w.drain, 5)
    assert w.consumer._acked[TP] == [] and w.consumer.commits == []
    # The events were learned, yet nothing may claim them: not the idle timer, not the
    # checkpoint at shutdown. A replacement replays them from the last commit.
    assert w.scorer.progress == {0: OFFSETS[-1]} and w.scorer.dirty == {"s1"}
    await w.idle_checkpoint()
    assert await w.store.mark_progress() == 0
    await w.store.stop()
    assert w.state.marks == [], "a progress mark claims a batch whose outputs failed"
    assert w.state.checkpoints == [], "a checkpoint claims a batch whose outputs failed"
