"""`pynomaly tail`: pretty-print records of one of our topics as they arrive."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson
from aiokafka import AIOKafkaConsumer

from streams.kafka_auth import aiokafka_auth_kwargs
from streams.settings import Settings

COLOURS = {"critical": "\033[1;31m", "error": "\033[31m", "warning": "\033[33m", "info": "\033[36m"}
RESET = "\033[0m"


def format_record(topic: str, doc: Any, colour: bool = False) -> str:
    if not isinstance(doc, dict):
        return f"{topic}: {doc!r}"
    if "reason" in doc and "source" in doc and "score" not in doc:
        src = doc["source"]
        return f"DEADLETTER {doc['reason']:<16} {src.get('topic')}[{src.get('partition')}]@{src.get('offset')}  {doc.get('message', '')}"
    if "score" in doc:
        ts = doc.get("ts")
        when = datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S") if isinstance(ts, int | float) else str(ts)
        value = doc.get("value", doc.get("values"))
        sev = doc.get("severity", "none")
        flag = sev.upper() if doc.get("is_anomaly") else ("warming" if doc.get("warming_up") else "ok")
        line = f"{when}  {doc.get('stream', '?'):<28} value={value!s:<12} score={doc['score']:.4f}  {flag}"
        if colour and sev in COLOURS and doc.get("is_anomaly"):
            line = COLOURS[sev] + line + RESET
        return line
    return f"{topic}: {orjson.dumps(doc).decode()}"


async def tail(settings: Settings, topic: str, from_beginning: bool, limit: int | None, out: TextIO = sys.stdout) -> int:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
        **aiokafka_auth_kwargs(settings),
    )
    await consumer.start()
    shown = 0
    colour = out.isatty()
    try:
        async for msg in consumer:
            try:
                doc = orjson.loads(msg.value) if msg.value else None
            except orjson.JSONDecodeError:
                doc = msg.value
            print(format_record(topic, doc, colour), file=out, flush=True)
            shown += 1
            if limit and shown >= limit:
                break
    finally:
        await consumer.stop()
    return shown
