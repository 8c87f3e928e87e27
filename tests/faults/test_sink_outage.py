"""A Slack receiver down, then answering 500, then 429 with Retry-After: every notification
is delivered once it recovers, and scoring does not slow down meanwhile.

Throughput is measured from the broker timestamps of the scored records of two equal
bursts, produced faster than the worker scores them: one with the sink healthy, one at
the start of the outage.
"""

from __future__ import annotations

import asyncio
import math
import time

import orjson
import pytest

from streams.broker import free_port
from tests.faults.support import Load, Tail, read_raw, report, size
from tests.support.kafka import WorkerProcess, topic_env, unique
from tests.support.receivers import SlackReceiver

pytestmark = pytest.mark.faults

CALM_STREAMS = 100


def spiky(i: int, spikes: tuple[int, ...]) -> float:
    value = 100 + 2 * math.sin(i / 5)
    return round(value + (80 if any(s <= i < s + 3 for s in spikes) else 0), 3)


def burst(load: Load, first: int, n: int, spikes: tuple[int, ...]) -> None:
    """``n`` events: CALM_STREAMS calm streams and one spiky stream, one event per tick each."""
    per_tick = CALM_STREAMS + 1
    for j in range(n // per_tick):
        i = first + j
        load.event("orders.spiky", i, spiky(i, spikes))
        for s in range(CALM_STREAMS):
            load.event(f"calm-{s:03d}", i, round(50 + math.cos((i + s) / 7), 3))
    load.flush()


def rate(stamps_ms: list[int]) -> float:
    """Scored records per second across a burst (first to last broker timestamp)."""
    span = (max(stamps_ms) - min(stamps_ms)) / 1000
    return len(stamps_ms) / max(span, 1e-3)


async def wait_until(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


async def test_sink_outage_delays_but_loses_no_notification(kafka_bootstrap, tmp_path):
    down_s, err500_s, err429_s = size(5, 60), size(5, 20), size(5, 20)
    n = size(10_100, 40_400)  # events per burst (a multiple of 101)
    ticks = n // (CALM_STREAMS + 1)
    slack = await SlackReceiver().start()
    app_id = unique("sink")
    env = {**topic_env(app_id), "PYNOMALY_SLACK_WEBHOOK_URL": slack.url,
           "PYNOMALY_SLACK_RATE_PER_S": "50", "PYNOMALY_QUIET_S": "20", "PYNOMALY_COOLDOWN_S": "0",
           "PYNOMALY_LATENESS_S": "0", "PYNOMALY_NOTIFY_TOPIC": app_id + ".notifications"}
    worker = WorkerProcess(kafka_bootstrap, env, tmp_path, free_port())
    load = Load(kafka_bootstrap, env["PYNOMALY_TOPIC_EVENTS"])
    tail = Tail(kafka_bootstrap, env["PYNOMALY_TOPIC_SCORES"])
    try:
        await asyncio.to_thread(worker.start, 90.0)
        tail.start()
        # healthy: a spike at tick 150 -> a trigger, then a resolve
        await asyncio.to_thread(burst, load, 0, n, (60,))
        await asyncio.to_thread(tail.wait, n, 90)
        await wait_until(lambda: len(slack.accepted) >= 2, 60, "the healthy trigger and resolve")
        healthy = rate(tail.stamps[:n])
        await asyncio.sleep(1.0)

        # outage: connection refused, then 500s, then 429 + Retry-After
        await slack.down()
        outage_started = time.monotonic()
        await asyncio.to_thread(burst, load, ticks, n, (ticks + 20, ticks + 70))
        await asyncio.to_thread(tail.wait, 2 * n, 90)
        during = rate(tail.stamps[n: 2 * n])
        await asyncio.sleep(max(0.0, down_s - (time.monotonic() - outage_started)))
        slack.fail("500")
        await slack.up()
        await asyncio.sleep(err500_s)
        slack.fail("429", retry_after=2)
        await asyncio.sleep(err429_s)
        slack.heal()
        healed = time.monotonic()

        notify_topic = app_id + ".notifications"

        def settled() -> bool:
            return len(slack.accepted) >= 6 or any(d.get("sink") for d in sink_dead())

        def sink_dead() -> list[dict]:
            return [orjson.loads(v) for v, _ in read_raw(
                kafka_bootstrap, env["PYNOMALY_TOPIC_DEADLETTER"], idle=0.3)]

        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not await asyncio.to_thread(settled):
            await asyncio.sleep(0.5)
        delivered_after = time.monotonic() - healed
        await asyncio.sleep(2.0)  # anything extra (a wrong duplicate) gets time to arrive
        planned = [orjson.loads(v) for v, _ in await asyncio.to_thread(read_raw, kafka_bootstrap,
                                                                       notify_topic)]
        dead = await asyncio.to_thread(sink_dead)
    finally:
        tail.stop()
        await asyncio.to_thread(worker.stop)
        await slack.stop()
    kinds = sorted(p["kind"] for p in planned)
    report("sink-outage", outage_s=down_s + err500_s + err429_s, burst_events=n,
           healthy_scored_per_s=f"{healthy:.0f}", outage_scored_per_s=f"{during:.0f}",
           ratio=f"{during / healthy:.2f}", notifications=len(planned),
           slack_accepted=len(slack.accepted), slack_attempts=slack.requests,
           delivered_after_heal_s=f"{delivered_after:.1f}")
    assert kinds == ["resolve"] * 3 + ["trigger"] * 3, kinds
    lost = [(d.get("reason"), d.get("message")) for d in dead if d.get("sink")]
    assert not lost, f"{len(lost)} notifications dead-lettered: {lost[:2]}"
    assert len(slack.accepted) >= len(planned)
    assert slack.rejected == []
    assert during >= 0.8 * healthy, f"scoring slowed to {during:.0f}/s from {healthy:.0f}/s"
