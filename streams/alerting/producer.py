"""The alerting side's own Kafka producer: alert records, dead letters, state, notifications.

Why not the app's (Faust's) producer:

* Faust's producer waits up to ``producer_request_timeout`` (20 minutes) for an answer,
  and it learned the cluster's topics when it started. The notify topic is created later
  (with the alert state topic), so its first record needed a metadata request; sent while
  a dead letter was in flight, that request's answer is lost on the dev broker (Tansu 0.6;
  reproduced with plain aiokafka in a few lines) and the whole producer waited: the
  incident agent's publish, and with it the consumer's batch drain (scoring too), stalled
  for 20 minutes. This producer starts after the alerting topics exist and learns every
  topic it will write, one at a time, before it sends anything; asks with a 30 s request
  timeout; and a publish that still fails is sent again (at-least-once: alert records
  carry (incident id, seq), which consumers use to drop duplicates).
* Alerting traffic then never queues behind scoring's large batches, nor the reverse.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from streams.kafka_auth import aiokafka_auth_kwargs
from streams.settings import Settings

log = logging.getLogger(__name__)

Record = tuple[str, bytes | None, bytes]  # (topic, key, value)
REQUEST_TIMEOUT_MS = 30_000
PUBLISH_ATTEMPTS = 5


class AlertProducer:
    def __init__(self, settings: Settings, topics: Iterable[str]) -> None:
        self.settings = settings
        self.topics = list(dict.fromkeys(t for t in topics if t))
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    @property
    def started(self) -> bool:
        return self._producer is not None

    async def start(self) -> None:
        async with self._lock:
            if self._producer is not None:
                return
            producer = AIOKafkaProducer(
                bootstrap_servers=self.settings.kafka_bootstrap, linger_ms=5, acks="all",
                request_timeout_ms=REQUEST_TIMEOUT_MS, **aiokafka_auth_kwargs(self.settings))
            await producer.start()
            try:
                for topic in self.topics:  # one at a time, and before any produce is in flight
                    await producer.partitions_for(topic)
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def publish(self, records: Sequence[Record], partitions: Sequence[int | None] | None = None) -> None:
        """Send every record and return once the broker acknowledged all of them.

        Retried as a whole after a failure (duplicates are possible, loss is not); raises
        the last error after :data:`PUBLISH_ATTEMPTS` so the caller's offsets never move
        past records that were not written.
        """
        if not records:
            return
        if self._producer is None:
            await self.start()
        parts = list(partitions) if partitions is not None else [None] * len(records)
        for attempt in range(1, PUBLISH_ATTEMPTS + 1):
            producer = self._producer
            assert producer is not None
            try:
                pending = [await producer.send(t, v, key=k, partition=p)
                           for (t, k, v), p in zip(records, parts, strict=True)]
                await asyncio.gather(*pending)
                return
            except KafkaError as exc:
                if attempt == PUBLISH_ATTEMPTS:
                    raise
                log.warning("alerting: writing %d records failed (%s); attempt %d of %d",
                            len(records), type(exc).__name__, attempt + 1, PUBLISH_ATTEMPTS)
                await asyncio.sleep(min(10.0, 0.5 * 2 ** attempt))
