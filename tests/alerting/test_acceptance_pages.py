"""Issue 12's acceptance: an alert means something.

Three series are written as CSV and published with ``pynomaly produce`` into one worker
with default settings (no detector, threshold or alerting overrides) and local Slack,
Teams and PagerDuty receivers that enforce each vendor's contract:

* a clean seasonal series (2,400 points: 50 + 5 sin(2 pi i / 120) + N(0, 0.5), one a
  minute) with three 3-point spikes of +60: exactly three PagerDuty triggers, each
  resolved with its dedup_key, and exactly three alert messages in Slack and in Teams;
* a random walk with drift and integer counts with a daily cycle (two weeks at five-minute
  steps): no incident at all.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import orjson
import pytest

from streams.broker import free_port
from tests.support.kafka import REPO, WorkerProcess, read_all
from tests.support.receivers import PD_KEY, PagerDutyReceiver, SlackReceiver, TeamsReceiver
from tests.support.waiting import async_wait_for

pytestmark = pytest.mark.integration

SPIKES = (800, 1500, 2100)
# Event time ends about now: the worker judges timestamps against its clock.
END = (int(time.time()) // 3600) * 3600


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _write(path: Path, stream: str, values: np.ndarray, step_s: int) -> None:
    start = END - step_s * len(values)
    lines = ["timestamp,value,stream"]
    lines += [f"{_iso(start + i * step_s)},{v:.4f},{stream}" for i, v in enumerate(values)]
    path.write_text("\n".join(lines) + "\n")


def series(tmp: Path) -> list[Path]:
    rng = np.random.default_rng(20261206)
    i = np.arange(2400)
    seasonal = 50 + 5 * np.sin(2 * np.pi * i / 120) + rng.normal(0, 0.5, i.size)
    for s in SPIKES:
        seasonal[s:s + 3] += 60
    walk = 100 + np.cumsum(rng.normal(0.05, 1.0, 2400))
    t = np.arange(14 * 288) * 300
    counts = rng.poisson(20 + 15 * np.sin(2 * np.pi * t / 86400)).astype(float)
    files = [tmp / "seasonal.csv", tmp / "walk.csv", tmp / "counts.csv"]
    _write(files[0], "shop.seasonal", seasonal, 60)
    _write(files[1], "shop.walk", walk, 60)
    _write(files[2], "shop.counts", counts, 300)
    return files


async def test_three_spikes_page_three_times_and_clean_series_never(kafka_bootstrap, app_env, tmp_path):
    slack, teams, pd = SlackReceiver(), TeamsReceiver(), PagerDutyReceiver()
    for r in (slack, teams, pd):
        await r.start()
    env = {**app_env,
           "PYNOMALY_SLACK_WEBHOOK_URL": slack.url, "PYNOMALY_TEAMS_WEBHOOK_URL": teams.url,
           "PYNOMALY_PAGERDUTY_ROUTING_KEY": PD_KEY, "PYNOMALY_PAGERDUTY_URL": pd.base_url,
           "PYNOMALY_NOTIFY_TOPIC": app_env["PYNOMALY_APP_ID"] + ".notifications"}
    worker = WorkerProcess(kafka_bootstrap, env, tmp_path, free_port())
    try:
        await asyncio.to_thread(worker.start, 90.0)
        files = series(tmp_path)
        res = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "streams.cli", "produce", *map(str, files), "--quiet"],
            env={**os.environ, **app_env, "PYNOMALY_KAFKA_BOOTSTRAP": kafka_bootstrap},
            capture_output=True, text=True, timeout=120, cwd=REPO)
        assert res.returncode == 0, res.stderr
        total = 2400 + 2400 + 14 * 288
        scored = await asyncio.to_thread(read_all, kafka_bootstrap, app_env["PYNOMALY_TOPIC_SCORES"],
                                         total, 180, 2)
        assert len(scored) >= total
        await async_wait_for(lambda: len(pd.events("resolve")) >= 3, 120, "three PagerDuty resolves")
        # Slack and Teams deliver independently: three triggers and three resolves each.
        await async_wait_for(lambda: len(slack.accepted) >= 6 and len(teams.accepted) >= 6, 60,
                         "Slack's and Teams' triggers and resolves")
        # Reading the alerts topic gives any extra (wrong) notification time to arrive too.
        alerts = await asyncio.to_thread(read_all, kafka_bootstrap, app_env["PYNOMALY_TOPIC_ALERTS"],
                                         None, 20, 2)
    finally:
        worker.stop()
        for r in (slack, teams, pd):
            await r.stop()

    opened = [a for a in alerts if a.get("type") == "incident" and a.get("action") == "opened"]
    assert sorted(a["stream"] for a in opened) == ["shop.seasonal"] * 3, opened
    triggers = [t for t in pd.events("trigger") if "still anomalous" not in t["payload"]["summary"]]
    resolves = pd.events("resolve")
    assert len(triggers) == 3 and len(resolves) == 3
    keys = sorted(t["dedup_key"] for t in triggers)
    assert len(set(keys)) == 3 and keys == sorted(r["dedup_key"] for r in resolves)
    assert pd.open_alerts == set()
    # Each page is one of the spikes, and says what was expected instead.
    spike_times = sorted(_iso(END - 60 * (2400 - s)) for s in SPIKES)
    assert sorted(t["payload"]["custom_details"]["Opened"][:19] + "Z" for t in triggers) == spike_times
    for t in triggers:
        assert "(expected " in t["payload"]["custom_details"]["Value"]
    for receiver in (slack, teams):
        bodies = [orjson.dumps(m).decode() for m in receiver.accepted]
        assert sum("RESOLVED" in b for b in bodies) == 3
        assert sum("RESOLVED" not in b for b in bodies) == 3, bodies
        assert all(sum(k in b for b in bodies) == 2 for k in keys)
        assert all("(expected " in b for b in bodies if "RESOLVED" not in b), bodies
