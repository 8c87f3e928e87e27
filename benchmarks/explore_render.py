"""How long the stream explorer takes to show 100,000 points of one stream in a browser.

Writes ``--points`` scored records of one stream (one a second, expected band, an anomaly
every 5,000) to a fresh scores topic, serves ``pynomaly explore`` on it and opens the page
in Debian's headless Chromium (Playwright) ``--runs`` times. Prints, per run: the JSON
API's time (Kafka read + JSON), the in-page draw time (both charts) and the whole time from
navigation to the chart being drawn. Target: the page ready in under 2 s.

    flock /tmp/heavy.lock python -m benchmarks.explore_render [--points 100000] [--runs 3]

Runs on its own embedded (Tansu) broker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer

from streams.broker import EmbeddedBroker, free_port, port_open

CHROMIUM = "/usr/bin/chromium"
STREAM = "bench.latency"


async def write(bootstrap: str, topic: str, points: int, end_ts: float) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=1 << 20)
    await producer.start()
    try:
        for i in range(points):
            anomaly = i % 5000 == 4999
            doc = {"stream": STREAM, "ts": end_ts - points + i, "value": 100.0 + (i % 60) / 6 + (80 if anomaly else 0),
                   "score": 0.9999999 if anomaly else 0.4, "threshold": 0.99999, "is_anomaly": anomaly,
                   "severity": "critical" if anomaly else "none", "warming_up": False,
                   "detector": "rarity_likelihood", "version": 1, "expected": {"low": 98.0, "high": 112.0}}
            await producer.send(topic, orjson.dumps(doc), key=STREAM.encode())
        await producer.flush()
    finally:
        await producer.stop()


@contextlib.contextmanager
def explore_server(bootstrap: str, topic: str) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "PYNOMALY_KAFKA_BOOTSTRAP": bootstrap, "PYNOMALY_TOPIC_SCORES": topic,
           "PYNOMALY_TOPIC_ALERTS": topic.replace(".scores", ".alerts")}
    proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "explore", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not port_open("127.0.0.1", port):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("pynomaly explore did not start")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(20)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"needs Debian's chromium at {CHROMIUM}: apt-get install -y chromium", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    topic = f"bench-{uuid.uuid4().hex[:8]}.scores"
    end_ts = time.time()
    with EmbeddedBroker() as embedded:
        bootstrap = embedded.bootstrap
        t = time.perf_counter()
        asyncio.run(write(bootstrap, topic, args.points, end_ts))
        print(f"wrote {args.points} scored records of one stream in {time.perf_counter() - t:.1f} s")
        with explore_server(bootstrap, topic) as base, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            query = f"stream={STREAM}&from={end_ts - args.points - 1}&to={end_ts + 1}&limit={args.points}"
            with urllib.request.urlopen(f"{base}/explore/api/series?{query}", timeout=120) as resp:
                size = len(resp.read())
            print(f"series JSON: {size / 1e6:.1f} MB")
            print(f"{'run':>3} {'api s':>7} {'draw s':>7} {'page ready s':>13} {'points':>8}")
            totals = []
            for run in range(1, args.runs + 1):
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                t = time.perf_counter()
                page.goto(f"{base}/explore?{query}")
                page.locator("#chart[data-state='ready']").wait_for(timeout=120_000)
                total = time.perf_counter() - t
                chart = page.locator("#chart")
                points = int(chart.get_attribute("data-points"))
                fetch_s = int(chart.get_attribute("data-fetch-ms")) / 1000
                draw_s = int(chart.get_attribute("data-render-ms")) / 1000
                print(f"{run:>3} {fetch_s:>7.2f} {draw_s:>7.2f} {total:>13.2f} {points:>8}")
                totals.append(total)
                page.close()
            browser.close()
    median = statistics.median(totals)
    print(f"median page ready: {median:.2f} s for {args.points} points (target < 2 s: "
          f"{'met' if median < 2 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
