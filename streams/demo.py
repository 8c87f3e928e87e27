"""`pynomaly demo`: broker (unless one is reachable), worker and synthetic producer, live view."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.broker import EmbeddedBroker, port_open
from streams.settings import Settings
from streams.synthetic import SyntheticStreams
from streams.tail import format_record
from streams.topics import ensure_topics


class LiveView:
    """Prints each detection as it arrives, and a status line every few seconds."""

    def __init__(self, synth: SyntheticStreams, out: Any = sys.stdout) -> None:
        self.synth = synth
        self.out = out
        self.sent = self.scored = self.anomalies = 0
        self.detected: set[tuple[str, int]] = set()
        self.started = time.monotonic()

    def on_anomaly(self, doc: dict[str, Any]) -> None:
        self.anomalies += 1
        hit = ""
        for inj in self.synth.injections:
            if inj.stream == doc.get("stream") and 0 <= doc.get("ts", 0) - inj.ts <= 10:
                self.detected.add((inj.stream, inj.tick))
                hit = f"  <- injected {inj.kind}"
                break
        print(format_record("anomalies", doc, colour=self.out.isatty()) + hit, file=self.out, flush=True)

    def status(self) -> str:
        elapsed = time.monotonic() - self.started
        return (
            f"[{elapsed:5.0f}s] sent {self.sent} | scored {self.scored} | anomalies {self.anomalies}"
            f" | injected {len(self.synth.injections)}, detected {len(self.detected)}"
        )


async def _produce(settings: Settings, synth: SyntheticStreams, view: LiveView, rate_ticks: float, stop: asyncio.Event) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=5)
    await producer.start()
    try:
        ts = time.time()
        while not stop.is_set():
            ts += 1.0  # one event per stream per second of event time
            for doc in synth.next_tick(ts):
                await producer.send(settings.topic_events, orjson.dumps(doc), key=doc["stream"].encode())
                view.sent += 1
            await asyncio.sleep(1.0 / rate_ticks)
        await producer.flush()
    finally:
        await producer.stop()


async def _watch(settings: Settings, topic: str, on_doc: Any, stop: asyncio.Event) -> None:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap, group_id=None,
                                auto_offset_reset="latest", enable_auto_commit=False)
    await consumer.start()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for msg in records:
                    on_doc(orjson.loads(msg.value))
    finally:
        await consumer.stop()


async def _run(settings: Settings, duration: float | None, streams: int, rate_ticks: float) -> int:
    await ensure_topics(settings)
    synth = SyntheticStreams(n_streams=streams, anomaly_rate=0.003, warmup_ticks=40)
    view = LiveView(synth)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def count_scored(doc: dict[str, Any]) -> None:
        view.scored += 1

    tasks = [
        asyncio.create_task(_watch(settings, settings.topic_anomalies, view.on_anomaly, stop)),
        asyncio.create_task(_watch(settings, settings.topic_scores, count_scored, stop)),
    ]
    await asyncio.sleep(1.0)  # watchers start at the latest offset; let them join first
    tasks.append(asyncio.create_task(_produce(settings, synth, view, rate_ticks, stop)))
    deadline = time.monotonic() + duration if duration else None
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=3.0)
        except TimeoutError:
            print(view.status(), file=sys.stderr, flush=True)
        if deadline and time.monotonic() >= deadline:
            stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(view.status(), file=sys.stderr, flush=True)
    return 0


def run_demo(settings: Settings, duration: float | None, streams: int, rate_ticks: float) -> int:
    host, _, port_text = settings.kafka_bootstrap.split(",")[0].rpartition(":")
    broker: EmbeddedBroker | None = None
    if not port_open(host, int(port_text)):
        broker = EmbeddedBroker(int(port_text), host).start()
        print(f"demo: started the embedded broker on {broker.bootstrap}", file=sys.stderr)
    else:
        print(f"demo: using the broker already on {settings.kafka_bootstrap}", file=sys.stderr)
    env = {**os.environ, "PYNOMALY_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
           "PYNOMALY_DEV_BROKER": "true", "PYNOMALY_APP_ID": settings.app_id,
           "PYNOMALY_WEB_PORT": str(settings.web_port), "PYNOMALY_LOG_LEVEL": "warning"}
    log_dir = Path(settings.data_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / "demo-worker.log"
    with log_path.open("ab") as log_file:
        worker = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"], env=env,
                                  stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    print(f"demo: worker started (pid {worker.pid}, log {log_path}); "
          f"metrics on http://127.0.0.1:{settings.web_port}/metrics", file=sys.stderr)
    try:
        return asyncio.run(_run(settings, duration, streams, rate_ticks))
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
        if broker:
            broker.stop()
        print("demo: stopped everything it started", file=sys.stderr)
