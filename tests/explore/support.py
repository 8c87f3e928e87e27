"""Helpers for the explorer tests: a stream with one spike, polling with a deadline."""

from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

import orjson

from tests.support.kafka import producer

T = TypeVar("T")


def produce_spiky_stream(bootstrap: str, topic: str, stream: str, n: int, spike_at: int,
                         end_ts: float | None = None, seed: int = 7) -> list[float]:
    """``n`` one-second events of ``stream`` ending now (or at ``end_ts``), one spike; returns the ts."""
    rng = random.Random(seed)
    end = time.time() if end_ts is None else end_ts
    ts = [round(end - n + i, 3) for i in range(n)]
    p = producer(bootstrap)
    for i, t in enumerate(ts):
        value = 10 + rng.gauss(0, 1) + (40 if i == spike_at else 0)
        p.produce(topic, orjson.dumps({"stream": stream, "ts": t, "value": value}), key=stream.encode())
        if i % 1000 == 0:
            p.poll(0)
    p.flush(30)
    return ts


def poll(fetch: Callable[[], T | None], timeout: float, what: str, every: float = 0.5) -> T:
    """Call ``fetch`` until it returns something truthy; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = fetch()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {str(last)[:300]})")


def get_json(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")
