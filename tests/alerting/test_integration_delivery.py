"""End to end, default detector: a stream that just stops resolves by wall-clock time, and a
hanging sink holds back neither the other sinks nor scoring.

The stream ends on a spike: no later event time will ever prove it over, so only the idle
sweep (``PYNOMALY_IDLE_RESOLVE_S``) can resolve that incident. Slack hangs (its receiver
never answers) for the whole run: PagerDuty and Teams still get every trigger and
resolve, each sink's consumer group commits its own progress, and once Slack answers
again it receives what it missed. A record written to the alerts topic an hour before the
sinks were first enabled is history: no sink sends it.
"""

from __future__ import annotations

import asyncio
import math
import time
from types import SimpleNamespace

import orjson
import pytest

from streams.alerting.notify_worker import group_id
from streams.broker import free_port
from tests.alerting.test_integration_alerting import T0, committed, wait_until
from tests.support.kafka import WorkerProcess, create_topics, producer, read_all
from tests.support.receivers import PD_KEY, PagerDutyReceiver, SlackReceiver, TeamsReceiver

pytestmark = pytest.mark.integration


def events() -> list[dict]:
    out = []
    for i in range(500):
        value = 100 + 2 * math.sin(i / 5)
        if 300 <= i < 303 or i == 499:  # the last event is a spike, then nothing more
            value += 80
        out.append({"stream": "checkout.latency", "ts": T0 + i, "value": round(value, 3)})
    return out


async def test_quiet_stream_resolves_and_a_hanging_sink_stalls_no_one(kafka_bootstrap, app_env, tmp_path):
    pd, teams, slack = PagerDutyReceiver(), TeamsReceiver(), SlackReceiver()
    for r in (pd, teams, slack):
        await r.start()
    slack.fail("timeout")  # accepts the connection, never answers
    env = {**app_env, "PYNOMALY_PAGERDUTY_ROUTING_KEY": PD_KEY, "PYNOMALY_PAGERDUTY_URL": pd.base_url,
           "PYNOMALY_TEAMS_WEBHOOK_URL": teams.url, "PYNOMALY_SLACK_WEBHOOK_URL": slack.url,
           "PYNOMALY_QUIET_S": "60", "PYNOMALY_COOLDOWN_S": "0", "PYNOMALY_LATENESS_S": "0",
           "PYNOMALY_IDLE_RESOLVE_S": "3", "PYNOMALY_HTTP_TIMEOUT_S": "2",
           "PYNOMALY_SLACK_RATE_PER_S": "50",
           # the dev broker stamps records with their append time, so "an hour ago" is written
           # now and a new sink's lookback is cut to one second (the worker starts in ~8 s)
           "PYNOMALY_NEW_SINK_LOOKBACK_S": "1"}
    worker = WorkerProcess(kafka_bootstrap, env, tmp_path, free_port())
    topic = app_env["PYNOMALY_TOPIC_ALERTS"]
    p = producer(kafka_bootstrap)
    old = {"type": "incident", "action": "opened", "incident_id": "inc-0ld0000000000000", "seq": 1,
           "stream": "old.stream", "detector": "rarity_likelihood", "ts": T0 - 3600, "opened_at": T0 - 3600,
           "severity": "critical", "count": 1, "score": 1.0, "peak_score": 1.0, "threshold": 0.999,
           "value": 1.0, "tags": {}, "suppressed": None, "group_id": None}
    await asyncio.to_thread(create_topics, kafka_bootstrap, [topic], 4)
    p.produce(topic, key=b"old.stream", value=orjson.dumps(old), timestamp=int((time.time() - 3600) * 1000))
    await asyncio.to_thread(p.flush, 30)
    try:
        await asyncio.to_thread(worker.start, 90.0)
        for ev in events():
            p.produce(app_env["PYNOMALY_TOPIC_EVENTS"], key=ev["stream"], value=orjson.dumps(ev))
        await asyncio.to_thread(p.flush, 30)
        await wait_until(lambda: len(pd.events("resolve")) >= 2 and len(teams.accepted) >= 4, 60,
                         "PagerDuty and Teams: two triggers and two resolves each")
        assert slack.accepted == [] and slack.requests >= 1  # still hanging all along
        keys = [t["dedup_key"] for t in pd.events("trigger")]
        assert len(keys) == 2 and sorted(keys) == sorted(r["dedup_key"] for r in pd.events("resolve"))
        alerts = [a for a in await asyncio.to_thread(read_all, kafka_bootstrap, topic, 5, 20, 0.5)
                  if a["stream"] == "checkout.latency"]
        resolved = {a["incident_id"]: (a["reason"], a["resolved_at"]) for a in alerts
                    if a["action"] == "resolved"}
        opened = {a["incident_id"]: a["opened_at"] for a in alerts if a["action"] == "opened"}
        assert sorted(resolved) == sorted(keys)
        # the first by the calm events after it, the last (nothing after it) by wall-clock idleness
        assert sorted(resolved.values()) == [("idle", T0 + 499 + 60), ("quiet", T0 + 300 + 60)]
        assert sorted(opened.values()) == [T0 + 300, T0 + 499]
        # each sink commits its own progress: PagerDuty's group is through all five records
        # (the old one skipped) while Slack's has not moved past its hung trigger
        s = SimpleNamespace(app_id=app_env["PYNOMALY_APP_ID"])
        await wait_until(lambda: committed(kafka_bootstrap, group_id(s, "pagerduty"), topic, 4) == 5, 15,
                         "PagerDuty's commits")
        assert committed(kafka_bootstrap, group_id(s, "slack"), topic, 4) == 1
        slack.heal()
        await wait_until(lambda: len(slack.accepted) >= 4, 60, "Slack's catch-up")
        assert sorted(k for k in keys for m in slack.accepted if k in orjson.dumps(m).decode()) == \
            sorted(keys + keys)
        assert slack.rejected == [] and teams.rejected == [] and pd.rejected == []
        assert not any("inc-0ld" in orjson.dumps(m).decode() for r in (slack, teams) for m in r.accepted)
    finally:
        await asyncio.to_thread(worker.stop)
        for r in (pd, teams, slack):
            await r.stop()
