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

# Event-time seconds of history each stream gets before injections start: the default
# detector is cautious with young streams (detectors/rarity.py, ``settle``), and a real
# deployment's streams have history too.
HISTORY_TICKS = 3000


class LiveView:
    """Prints each detection as it arrives, and a status line every few seconds: how many
    anomaly records belong to an injection (same stream, within its effect) and how many
    injections were detected."""

    def __init__(self, synth: SyntheticStreams, out: Any = sys.stdout, live_from: float = 0.0) -> None:
        self.synth = synth
        self.out = out
        self.live_from = live_from  # anomalies of the history backfill are not shown
        self.sent = self.scored = self.anomalies = self.explained = 0
        self.detected: set[tuple[str, int]] = set()
        self.last_ts = 0.0
        self.started = time.monotonic()

    def on_anomaly(self, doc: dict[str, Any]) -> None:
        ts = doc.get("ts", 0)
        if ts < self.live_from:
            return
        self.anomalies += 1
        hit = ""
        for inj in self.synth.injections:
            if inj.covers(doc.get("stream", ""), ts):
                self.detected.add((inj.stream, inj.tick))
                hit = f"  <- injected {inj.kind}"
                self.explained += 1
                break
        print(format_record("anomalies", doc, colour=self.out.isatty()) + hit, file=self.out, flush=True)

    def on_scored(self, doc: dict[str, Any]) -> None:
        self.scored += 1
        self.last_ts = max(self.last_ts, doc.get("ts", 0))

    def figures(self) -> tuple[int, int, int, int]:
        """(anomalies, of them from an injection, injections due, of them detected): an
        injection is due once the scores have passed the end of its effect."""
        due = [i for i in self.synth.injections if i.until <= self.last_ts]
        hit = sum((i.stream, i.tick) in self.detected for i in due)
        return self.anomalies, self.explained, len(due), hit

    def status(self) -> str:
        elapsed = time.monotonic() - self.started
        anomalies, explained, due, hit = self.figures()
        precision = f"{explained / anomalies:.0%}" if anomalies else "-"
        recall = f"{hit / due:.0%}" if due else "-"
        return (
            f"[{elapsed:5.0f}s] sent {self.sent} | scored {self.scored} | anomalies {anomalies}"
            f" ({precision} from an injection) | injected {len(self.synth.injections)},"
            f" detected {hit} of {due} due ({recall})"
        )


async def _produce(settings: Settings, synth: SyntheticStreams, view: LiveView, rate_ticks: float,
                   stop: asyncio.Event, start_ts: float, history: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=5)
    await producer.start()
    try:
        ts = start_ts
        for _ in range(history):  # the streams' past, as fast as the broker takes it
            ts += 1.0
            for doc in synth.next_tick(ts):
                await producer.send(settings.topic_events, orjson.dumps(doc), key=doc["stream"].encode())
                view.sent += 1
            if stop.is_set():
                return
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
    synth = SyntheticStreams(n_streams=streams, anomaly_rate=0.001, warmup_ticks=HISTORY_TICKS)
    start_ts = time.time() - HISTORY_TICKS
    view = LiveView(synth, live_from=start_ts + HISTORY_TICKS + 1)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    tasks = [
        asyncio.create_task(_watch(settings, settings.topic_anomalies, view.on_anomaly, stop)),
        asyncio.create_task(_watch(settings, settings.topic_scores, view.on_scored, stop)),
    ]
    await asyncio.sleep(1.0)  # watchers start at the latest offset; let them join first
    print(f"demo: sending {HISTORY_TICKS} s of history per stream, then live events with injected "
          "anomalies", file=sys.stderr, flush=True)
    tasks.append(asyncio.create_task(_produce(settings, synth, view, rate_ticks, stop, start_ts,
                                              HISTORY_TICKS)))
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
        broker = EmbeddedBroker(int(port_text), host, own_session=True).start()
        print(f"demo: started the embedded broker on {broker.bootstrap}", file=sys.stderr)
    else:
        print(f"demo: using the broker already on {settings.kafka_bootstrap}", file=sys.stderr)
    env = {**os.environ, "PYNOMALY_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
           "PYNOMALY_DEV_BROKER": "true", "PYNOMALY_APP_ID": settings.app_id,
           "PYNOMALY_WEB_PORT": str(settings.web_port), "PYNOMALY_LOG_LEVEL": "warning"}
    log_dir = Path(settings.data_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / "demo-worker.log"
    # The worker and the broker run in their own sessions: Ctrl-C reaches only this process,
    # which stops its own clients, then the worker, then the broker (each still has a broker
    # to say goodbye to; no connection-error flood).
    with log_path.open("ab") as log_file:
        worker = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"], env=env,
                                  stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  start_new_session=True)
    print(f"demo: worker started (pid {worker.pid}, log {log_path}); "
          f"metrics on http://127.0.0.1:{settings.web_port}/metrics", file=sys.stderr)
    try:
        return asyncio.run(_run(settings, duration, streams, rate_ticks))
    finally:
        _stop_worker(worker)
        if broker:
            broker.stop()
        print("demo: stopped everything it started", file=sys.stderr)


def _stop_worker(worker: subprocess.Popen[bytes]) -> None:
    """SIGTERM and wait for a clean shutdown; a second Ctrl-C or 15 s make it a kill."""
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout=15)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        worker.kill()
        worker.wait()
