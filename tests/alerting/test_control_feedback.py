"""End to end: a spike opens an incident, the control API lists it, `pynomaly feedback`
marks it a false positive, and PagerDuty gets the resolve with the same dedup_key.

A real worker subprocess on the real broker, a local PagerDuty receiver that enforces the
Events API v2 contract, and the CLI run as a subprocess, as a person would run it.
"""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import sys

import aiohttp
import orjson
import pytest

from tests.alerting.test_integration_alerting import DETECTOR, T0, wait_until
from tests.support.kafka import REPO, producer, read_all
from tests.support.receivers import PD_KEY, PagerDutyReceiver

pytestmark = pytest.mark.integration

TOKEN = "control-token-for-the-test"


def events() -> list[dict]:
    # a quiet warm-up, one spike at 300, then calm for less than quiet_s: the incident stays open
    return [{"stream": "payments.latency", "ts": T0 + i,
             "value": round(100 + 2 * math.sin(i / 5) + (80 if 300 <= i < 303 else 0), 3)}
            for i in range(340)]


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], env={**os.environ, **env},
                          cwd=REPO, capture_output=True, text=True, timeout=60)


async def get(url: str, token: str | None) -> tuple[int, object]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as s, s.get(url, headers=headers) as r:
        return r.status, await r.json()


async def test_false_positive_feedback_from_the_cli_resolves_the_incident(
        kafka_bootstrap, app_env, start_worker):
    pd = await PagerDutyReceiver().start()
    env = {**app_env, "PYNOMALY_PAGERDUTY_ROUTING_KEY": PD_KEY, "PYNOMALY_PAGERDUTY_URL": pd.base_url,
           "PYNOMALY_COOLDOWN_S": "0", "PYNOMALY_LATENESS_S": "0", "PYNOMALY_CONTROL_TOKEN": TOKEN,
           # The incident must still be open when the feedback arrives, however slow the
           # machine: no idle resolve (60 s of wall-clock by default) within the test.
           "PYNOMALY_IDLE_RESOLVE_S": "3600",
           **DETECTOR}
    try:
        worker = await asyncio.to_thread(start_worker, env, 90.0)
        base = f"http://127.0.0.1:{worker.env['PYNOMALY_WEB_PORT']}"
        p = producer(kafka_bootstrap)
        for ev in events():
            p.produce(app_env["PYNOMALY_TOPIC_EVENTS"], key=ev["stream"], value=orjson.dumps(ev))
        await asyncio.to_thread(p.flush, 30)
        await wait_until(lambda: len(pd.events("trigger")) >= 1, 60, "the PagerDuty trigger")
        key = pd.events("trigger")[0]["dedup_key"]

        assert (await get(f"{base}/incidents", None))[0] == 401
        assert (await get(f"{base}/incidents", "wrong"))[0] == 401
        assert (await get(f"{base}/healthz", None))[0] == 200  # probes stay open
        status, listed = await get(f"{base}/incidents", TOKEN)
        assert status == 200 and [i["id"] for i in listed] == [key]  # type: ignore[union-attr]

        cli_env = {**app_env, "PYNOMALY_KAFKA_BOOTSTRAP": kafka_bootstrap, "PYNOMALY_DEV_BROKER": "true"}
        bad = await asyncio.to_thread(run_cli, cli_env, "feedback", "inc-does-not-exist",
                                      "--label", "false_positive")
        assert bad.returncode == 2 and "unknown incident 'inc-does-not-exist'" in bad.stderr
        done = await asyncio.to_thread(run_cli, cli_env, "feedback", key, "--label", "false_positive",
                                       "--by", "alice", "--comment", "deploy, not an anomaly")
        assert done.returncode == 0, done.stderr
        assert "payments.latency" in done.stdout

        await wait_until(lambda: len(pd.events("resolve")) >= 1, 30, "the PagerDuty resolve")
        assert [r["dedup_key"] for r in pd.events("resolve")] == [key]
        assert pd.rejected == [] and pd.open_alerts == set()
        status, listed = await get(f"{base}/incidents", TOKEN)
        assert status == 200 and listed == []
        # silences through the worker's own web server: created, in the audit log, deleted
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as s:
            async with s.post(f"{base}/silences", json={"stream": "orders.*", "duration_s": 600}) as r:
                assert r.status == 201, await r.text()
                sil = await r.json()
            async with s.post(f"{base}/silences", json={"stream": "orders.*"}) as r:
                assert r.status == 400 and "expiry" in (await r.json())["message"]
            async with s.get(f"{base}/silences") as r:
                assert [x["id"] for x in await r.json()] == [sil["id"]]
            async with s.delete(f"{base}/silences/{sil['id']}") as r:
                assert r.status == 200
        alerts = await asyncio.to_thread(read_all, kafka_bootstrap, app_env["PYNOMALY_TOPIC_ALERTS"],
                                         None, 15, 1)
        assert [(a["type"], a["action"]) for a in alerts if a.get("silence_id") == sil["id"]] == \
            [("silence", "created"), ("silence", "deleted")]
        fb = [a for a in alerts if a["action"] == "feedback"]
        assert len(fb) == 1 and fb[0]["incident_id"] == key and fb[0]["feedback"] == "false_positive"
        assert (fb[0]["by"], fb[0]["comment"], fb[0]["strict_steps"]) == \
            ("alice", "deploy, not an anomaly", 1)
        resolved = [a for a in alerts if a["action"] == "resolved"]
        assert [(a["incident_id"], a["reason"]) for a in resolved] == [(key, "false_positive")]
        assert TOKEN not in worker.log()
    finally:
        await pd.stop()
