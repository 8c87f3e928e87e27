"""`pynomaly feedback INCIDENT_ID --label ...`: publish one feedback record.

The record (format in :mod:`streams.alerting.feedback`) goes to the feedback topic keyed
by the incident's stream, so it lands on the partition, hence the worker, that owns the
stream's incidents. Without ``--stream`` the stream (and detector) are looked up in the
alerts topic, the audit log of every incident transition.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from streams.errors import PynomalyError
from streams.kafka_auth import aiokafka_auth_kwargs
from streams.settings import Settings

LABELS = ("false_positive", "true_positive", "ack")


class FeedbackError(PynomalyError):
    """The feedback cannot be sent as asked (unknown incident, bad label)."""


async def find_incident(settings: Settings, incident_id: str,
                        timeout_s: float = 30.0) -> tuple[str, str] | None:
    """(stream, detector) of ``incident_id`` from the alerts topic, or None if never seen.

    Reads every partition from the start to the end offsets taken at the start (no
    consumer group, nothing committed). The newest matching record wins.
    """
    topic = settings.topic_alerts
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False,
                                **aiokafka_auth_kwargs(settings))
    found: tuple[str, str] | None = None
    try:
        await consumer.start()
        await consumer.topics()  # fetches the cluster metadata, partitions included
        parts = consumer.partitions_for_topic(topic)
        tps = [TopicPartition(topic, p) for p in sorted(parts or ())]
        if not tps:
            return None
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout_s
        todo = {tp for tp in tps if ends[tp] > 0}
        while todo and time.monotonic() < deadline:
            batch = await consumer.getmany(*todo, timeout_ms=500, max_records=10_000)
            for msgs in batch.values():
                for msg in msgs:
                    hit = _match(msg.value, incident_id)
                    found = hit or found
            for tp in list(todo):
                if await consumer.position(tp) >= ends[tp]:
                    todo.discard(tp)
        if todo:
            raise FeedbackError(f"reading {topic} took longer than {timeout_s:.0f} s; pass --stream "
                                "to skip the lookup")
    finally:
        await consumer.stop()
    return found


def _match(value: bytes | None, incident_id: str) -> tuple[str, str] | None:
    try:
        rec = orjson.loads(value or b"null")
    except orjson.JSONDecodeError:
        return None  # the audit log is ours, but a stray record must not stop the lookup
    if isinstance(rec, dict) and rec.get("type") == "incident" and rec.get("incident_id") == incident_id:
        stream, detector = rec.get("stream"), rec.get("detector")
        if isinstance(stream, str) and isinstance(detector, str):
            return stream, detector
    return None


def feedback_record(label: str, incident_id: str, stream: str, detector: str | None = None,
                    by: str = "", comment: str = "", ts: float | None = None) -> dict[str, Any]:
    """The feedback JSON object (``ts``: now, as event time close to wall-clock time)."""
    if label not in LABELS:
        raise FeedbackError(f"--label must be one of {', '.join(LABELS)}, got {label!r}")
    doc: dict[str, Any] = {"kind": label, "incident_id": incident_id, "stream": stream,
                           "ts": time.time() if ts is None else ts, "by": by, "comment": comment}
    if detector:
        doc["detector"] = detector
    return doc


async def publish_feedback(settings: Settings, record: dict[str, Any]) -> None:
    """Send one record to the feedback topic, keyed by stream; returns once acknowledged."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all",
                                **aiokafka_auth_kwargs(settings))
    try:
        await producer.start()
        await producer.send_and_wait(settings.topic_feedback, orjson.dumps(record),
                                     key=str(record.get("stream") or record["incident_id"]).encode())
    finally:
        await producer.stop()


async def send_feedback(settings: Settings, incident_id: str, label: str, stream: str | None = None,
                        by: str = "", comment: str = "") -> dict[str, Any]:
    """Look up the stream if needed, then publish; returns the record sent."""
    if not incident_id.strip():
        raise FeedbackError("INCIDENT_ID is empty: pass the id from the alert (e.g. inc-...)")
    detector = None
    if stream is None:
        hit = await find_incident(settings, incident_id)
        if hit is None:
            raise FeedbackError(f"unknown incident {incident_id!r}: no record of it in "
                                f"{settings.topic_alerts}; check the id, the broker "
                                "(--bootstrap) and the topic (PYNOMALY_TOPIC_ALERTS), or pass "
                                "--stream")
        stream, detector = hit
    record = feedback_record(label, incident_id, stream, detector, by, comment)
    await publish_feedback(settings, record)
    return record


def run_feedback(settings: Settings, incident_id: str, label: str, stream: str | None = None,
                 by: str = "", comment: str = "") -> int:
    """The CLI entry point: prints what was sent; errors raise FeedbackError (exit 2)."""
    if stream is not None and not stream.strip():
        raise FeedbackError("--stream is empty: give the incident's stream name, or leave it out")
    try:
        record = asyncio.run(send_feedback(settings, incident_id, label, stream, by, comment))
    except KafkaError as exc:
        err = FeedbackError(f"cannot talk to Kafka at {settings.kafka_bootstrap} "
                            f"({type(exc).__name__}); check --bootstrap / PYNOMALY_KAFKA_BOOTSTRAP "
                            "and that the broker is up, then retry")
        err.retriable = True
        raise err from None
    print(f"pynomaly: sent {label} feedback on {incident_id} (stream {record['stream']}) to "
          f"{settings.topic_feedback}")
    return 0
