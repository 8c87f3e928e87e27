"""`pynomaly produce`: publish CSV or NDJSON files of events, keyed by stream."""

from __future__ import annotations

import asyncio
import csv
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from streams.codec import _Invalid, parse_ts
from streams.kafka_auth import aiokafka_auth_kwargs
from streams.settings import Settings


class InputFileError(ValueError):
    """A line of an input file cannot become an event; names the file and line."""

    retriable = False


def _csv_events(path: Path, default_stream: str) -> Iterator[dict[str, Any]]:
    with path.open(newline="", encoding="utf-8") as fh:
        for lineno, row in enumerate(csv.reader(fh), start=1):
            if not row or (lineno == 1 and row[0].strip().lower() in {"timestamp", "ts", "time"}):
                continue
            if len(row) < 2:
                raise InputFileError(f"{path}:{lineno}: expected timestamp,value[,stream]")
            ts_text, value_text = row[0].strip(), row[1].strip()
            try:
                value = float(value_text)
            except ValueError:
                raise InputFileError(f"{path}:{lineno}: value {value_text!r} is not a number") from None
            try:
                ts = parse_ts(float(ts_text) if _is_number(ts_text) else ts_text.replace(" ", "T"))
            except _Invalid as exc:
                raise InputFileError(f"{path}:{lineno}: {exc.message}") from None
            stream = row[2].strip() if len(row) > 2 and row[2].strip() else default_stream
            yield {"stream": stream, "ts": ts, "value": value}


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _ndjson_events(path: Path, default_stream: str) -> Iterator[dict[str, Any]]:
    with path.open("rb") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                doc = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise InputFileError(f"{path}:{lineno}: not JSON ({exc})") from None
            if not isinstance(doc, dict):
                raise InputFileError(f"{path}:{lineno}: expected a JSON object per line")
            doc.setdefault("stream", default_stream)
            yield doc


def read_events(path: Path) -> Iterator[dict[str, Any]]:
    if not path.exists():
        raise InputFileError(f"{path}: no such file")
    stream = path.stem
    if path.suffix.lower() in {".ndjson", ".jsonl", ".json"}:
        return _ndjson_events(path, stream)
    return _csv_events(path, stream)


def count_lines(path: Path) -> int:
    with path.open("rb") as fh:
        return sum(1 for _ in fh)


class Progress:
    def __init__(self, total: int, out: Any = sys.stderr) -> None:
        self.total, self.done, self.out = total, 0, out
        self.started = self.last = time.monotonic()

    def update(self, n: int = 1, force: bool = False) -> None:
        self.done += n
        now = time.monotonic()
        if force or now - self.last >= 0.25:
            self.last = now
            pct = 100.0 * self.done / self.total if self.total else 100.0
            rate = self.done / max(now - self.started, 1e-9)
            bar = "#" * int(pct / 5)
            self.out.write(f"\r[{bar:<20}] {self.done}/{self.total} events {pct:5.1f}% {rate:,.0f}/s")
            self.out.flush()


async def produce_files(settings: Settings, paths: list[Path], rate: float | None, quiet: bool = False) -> int:
    total = sum(count_lines(p) for p in paths)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, linger_ms=5, **aiokafka_auth_kwargs(settings)
    )
    await producer.start()
    progress = Progress(total) if not quiet else None
    sent = 0
    started = time.monotonic()
    try:
        for path in paths:
            for doc in read_events(path):
                await producer.send(settings.topic_events, orjson.dumps(doc), key=str(doc["stream"]).encode())
                sent += 1
                if progress:
                    progress.update()
                if rate:
                    ahead = sent / rate - (time.monotonic() - started)
                    if ahead > 0:
                        await asyncio.sleep(ahead)
        await producer.flush()
    finally:
        await producer.stop()
    if progress:
        progress.total = sent
        progress.update(0, force=True)
        print(file=sys.stderr)
    return sent
