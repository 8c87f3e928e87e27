"""End to end: worker subprocess on the real broker -> incidents -> Slack, Teams, PagerDuty.

Three well-separated spikes on one stream after a quiet warm-up must each reach every
sink once as a valid payload (the local receivers enforce each vendor's contract), and
PagerDuty must get a resolve with the same dedup_key for each incident. A webhook whose
receiver refuses our signature (a final failure) is dead-lettered without holding up
the other sinks.
"""

from __future__ import annotations

import asyncio
import math
import time

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition

from streams.broker import free_port
from tests.faults.support import metric, scrape
from tests.support.kafka import WorkerProcess, producer, read_all
from tests.support.receivers import PD_KEY, PagerDutyReceiver, SlackReceiver, TeamsReceiver, WebhookReceiver

pytestmark = pytest.mark.integration

T0 = 1_790_000_000
SPIKES = (400, 800, 1200)
# The default detector (rarity_likelihood), as the acceptance check runs it: it flags the
# first event of each spike, so each spike is a one-event incident.
DETECTOR: dict[str, str] = {}


def events() -> list[dict]:
    out = []
    for i in range(1400):
        # smooth, deterministic signals: no noise that a 0.999 threshold could flag
        value = 100 + 2 * math.sin(i / 5)
        if any(s <= i < s + 3 for s in SPIKES):
            value += 80
        out.append({"stream": "payments.latency", "ts": T0 + i, "value": round(value, 3),
                    "tags": {"service": "payments"}})
        out.append({"stream": "orders.rate", "ts": T0 + i, "value": round(50 + math.cos(i / 7), 3)})
    return out


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> int:
    """Sum of the group's committed offsets on ``topic`` (0 where none)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        got = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return sum(max(tp.offset, 0) for tp in got)
    finally:
        c.close()


async def wait_until(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


async def test_spikes_reach_every_sink_and_pagerduty_resolves(kafka_bootstrap, app_env, tmp_path):
    slack, teams, pd = SlackReceiver(), TeamsReceiver(), PagerDutyReceiver()
    hook = WebhookReceiver("the-receivers-secret")
    for r in (slack, teams, pd, hook):
        await r.start()
    env = {**app_env,
           "PYNOMALY_SLACK_WEBHOOK_URL": slack.url, "PYNOMALY_TEAMS_WEBHOOK_URL": teams.url,
           "PYNOMALY_PAGERDUTY_ROUTING_KEY": PD_KEY, "PYNOMALY_PAGERDUTY_URL": pd.base_url,
           "PYNOMALY_DASHBOARD_URL": "http://grafana.local:3000",
           "PYNOMALY_QUIET_S": "60", "PYNOMALY_COOLDOWN_S": "0", "PYNOMALY_LATENESS_S": "0",
           "PYNOMALY_WEBHOOK_URL": hook.url, "PYNOMALY_WEBHOOK_SECRET": "a-different-secret",
           "PYNOMALY_NOTIFY_TOPIC": app_env["PYNOMALY_APP_ID"] + ".notifications",
           "PYNOMALY_SLACK_RATE_PER_S": "50", **DETECTOR}
    worker = WorkerProcess(kafka_bootstrap, env, tmp_path, free_port())
    try:
        await asyncio.to_thread(worker.start, 90.0)
        p = producer(kafka_bootstrap)
        for ev in events():
            p.produce(app_env["PYNOMALY_TOPIC_EVENTS"], key=ev["stream"], value=orjson.dumps(ev))
        # bad input on the alerting topics is dead-lettered with a reason, never fatal
        p.produce(app_env["PYNOMALY_TOPIC_SCORES"], key=b"junk", value=b"not json")
        p.produce(app_env["PYNOMALY_TOPIC_SCORES"], key=b"junk", value=b'{"stream": "junk", "ts": 1}')
        p.produce(app_env["PYNOMALY_TOPIC_FEEDBACK"], key=b"junk", value=b'{"kind": "maybe", "ts": 1}')
        await asyncio.to_thread(p.flush, 30)
        await wait_until(lambda: len(pd.events("resolve")) >= 3, 120, "three PagerDuty resolves")
        # the sinks deliver independently: wait for each one's six messages (or refusals)
        await wait_until(lambda: len(slack.accepted) >= 6 and len(teams.accepted) >= 6
                         and len(hook.rejected) >= 6, 30, "every sink's trigger and resolve")
        # reading the topics first also gives any extra (wrong) notification time to arrive
        alerts = await asyncio.to_thread(read_all, kafka_bootstrap, app_env["PYNOMALY_TOPIC_ALERTS"],
                                         None, 20, 1)
        dead = await asyncio.to_thread(read_all, kafka_bootstrap, app_env["PYNOMALY_TOPIC_DEADLETTER"],
                                       9, 20, 0.5)
        for r in (slack, teams, pd):
            assert r.rejected == [], r.rejected
        resolves = pd.events("resolve")
        # one trigger per incident; PagerDuty may also get a re-trigger with the same key
        # when an incident's severity escalates ("still anomalous"), which updates the alert
        firsts = [t for t in pd.events("trigger") if "still anomalous" not in t["payload"]["summary"]]
        escalations = [t for t in pd.events("trigger") if "still anomalous" in t["payload"]["summary"]]
        triggers = firsts
        assert len(firsts) == 3 and len(resolves) == 3
        keys = [t["dedup_key"] for t in firsts]
        assert len(set(keys)) == 3 and sorted(keys) == sorted(r["dedup_key"] for r in resolves)
        assert {t["dedup_key"] for t in escalations} <= set(keys)
        opened = sorted(t["payload"]["custom_details"]["Opened"] for t in triggers)
        assert all(t["payload"]["source"] == "payments.latency" for t in triggers)
        assert pd.open_alerts == set()
        slack_texts = [m["text"] for m in slack.accepted]
        teams_titles = [m["attachments"][0]["content"]["body"][0]["text"] for m in teams.accepted]
        for key in keys:
            assert sum(key in orjson.dumps(m).decode() for m in slack.accepted) == 2  # trigger + resolve
            assert sum(key in orjson.dumps(m).decode() for m in teams.accepted) == 2
        assert sum(t.startswith("[RESOLVED]") for t in teams_titles) == 3
        assert sum("RESOLVED" in t for t in slack_texts) == 3
        assert "grafana.local:3000/d/pynomaly-detectors" in orjson.dumps(slack.accepted[0]).decode()
        acts = [(a["action"], a["incident_id"]) for a in alerts if a["type"] == "incident"]
        assert sorted(i for a, i in acts if a == "opened") == sorted(keys)
        assert len(opened) == 3
        # the webhook answered 401 to all six notifications: each one dead-lettered, once
        published = await asyncio.to_thread(read_all, kafka_bootstrap,
                                            app_env["PYNOMALY_APP_ID"] + ".notifications", 6, 20, 0.5)
        assert sorted((n["kind"], n["incident_id"]) for n in published) == \
            sorted([("trigger", k) for k in keys] + [("resolve", k) for k in keys])
        bad_input = sorted((d["source"]["topic"].rsplit(".", 1)[1], d["reason"]) for d in dead
                           if "sink" not in d)
        assert bad_input == [("feedback", "bad_field"), ("scores", "bad_field"), ("scores", "not_json")]
        sink_dead = [d for d in dead if d.get("sink") == "webhook"]
        assert len(sink_dead) == 6 and {d["reason"] for d in sink_dead} == {"sink_final"}
        assert sorted({d["notification"]["incident_id"] for d in sink_dead}) == sorted(keys)
        assert hook.accepted == [] and {c for c, *_ in hook.rejected} == {401}
        assert "a-different-secret" not in worker.log()
        # The alerting metrics moved with what happened (docs/metrics.md).
        text = await asyncio.to_thread(scrape, int(worker.env["PYNOMALY_WEB_PORT"]))
        assert metric(text, "pynomaly_incident_transitions_total", 'transition="opened"') == 3
        assert metric(text, "pynomaly_incident_transitions_total", 'transition="resolved"') == 3
        assert metric(text, "pynomaly_notifications_total", 'outcome="delivered",sink="slack"') == 6
        assert metric(text, "pynomaly_notifications_total", 'outcome="final",sink="webhook"') == 6
        assert metric(text, "pynomaly_sink_request_duration_seconds_count", 'sink="slack"') == 6
        assert metric(text, "pynomaly_sink_request_duration_seconds_count", 'sink="webhook"') == 6
        # the three bad records above (two on the scores topic, one on the feedback topic)
        assert metric(text, "pynomaly_errors_total", 'component="incidents"') == 3
    finally:
        await asyncio.to_thread(worker.stop)
        for r in (slack, teams, pd, hook):
            await r.stop()


async def test_open_incident_survives_a_worker_crash_and_a_slow_sink(kafka_bootstrap, app_env, tmp_path):
    import signal

    pd = await PagerDutyReceiver().start()
    slack = await SlackReceiver().start()
    slack.fail("slow", delay=30.0)  # a slow sink: answers, but only after 30 s
    env = {**app_env, "PYNOMALY_PAGERDUTY_ROUTING_KEY": PD_KEY, "PYNOMALY_PAGERDUTY_URL": pd.base_url,
           "PYNOMALY_SLACK_WEBHOOK_URL": slack.url,
           "PYNOMALY_QUIET_S": "60", "PYNOMALY_COOLDOWN_S": "0", "PYNOMALY_LATENESS_S": "0", **DETECTOR}
    evs = [e for e in events() if e["stream"] == "payments.latency"]
    topic = app_env["PYNOMALY_TOPIC_EVENTS"]
    p = producer(kafka_bootstrap)
    first = WorkerProcess(kafka_bootstrap, env, tmp_path, free_port())
    second = WorkerProcess(kafka_bootstrap, env, tmp_path, free_port())
    try:
        await asyncio.to_thread(first.start, 90.0)
        for ev in evs[:410]:  # warm-up and the first spike; not yet quiet long enough to resolve
            p.produce(topic, key=ev["stream"], value=orjson.dumps(ev))
        await asyncio.to_thread(p.flush, 30)
        await wait_until(lambda: len(pd.events("trigger")) >= 1, 60, "the PagerDuty trigger")
        # the slow Slack sink held back neither scoring nor PagerDuty: its request is still open
        await wait_until(lambda: slack.requests >= 1, 15, "the Slack request")
        assert slack.accepted == []
        # PagerDuty's own consumer group commits its progress though Slack's is stuck
        pd_group = f"{app_env['PYNOMALY_APP_ID']}.notify.pagerduty"
        await wait_until(lambda: committed(kafka_bootstrap, pd_group, app_env["PYNOMALY_TOPIC_ALERTS"], 4) >= 1,
                         15, "PagerDuty's commit")
        slack.heal()
        await asyncio.to_thread(first.stop, signal.SIGKILL)  # a crash, not a clean shutdown
        await asyncio.to_thread(second.start, 90.0)
        for ev in evs[410:600]:  # calm: the restored incident must resolve, under the same id
            p.produce(topic, key=ev["stream"], value=orjson.dumps(ev))
        await asyncio.to_thread(p.flush, 30)
        await wait_until(lambda: len(pd.events("resolve")) >= 1, 90, "the PagerDuty resolve")
        alerts = await asyncio.to_thread(read_all, kafka_bootstrap, app_env["PYNOMALY_TOPIC_ALERTS"],
                                         None, 20, 1)
        assert pd.rejected == []
        trig_keys = {t["dedup_key"] for t in pd.events("trigger")}
        res_keys = {r["dedup_key"] for r in pd.events("resolve")}
        assert len(trig_keys) == 1 and res_keys == trig_keys
        # PagerDuty committed its trigger before the crash: the restart does not send it again
        assert len(pd.events("trigger")) == 1
        assert "restored incident state of 1 streams" in second.log()
        await wait_until(lambda: any("RESOLVED" in m["text"] for m in slack.accepted), 30, "Slack resolve")
        assert slack.rejected == []
        assert {a["incident_id"] for a in alerts if a["action"] == "opened"} == trig_keys
        assert {a["incident_id"] for a in alerts if a["action"] == "resolved"} == trig_keys
    finally:
        await asyncio.to_thread(first.stop)
        await asyncio.to_thread(second.stop)
        await pd.stop()
        await slack.stop()
