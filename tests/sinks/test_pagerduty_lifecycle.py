"""The PagerDuty lifecycle of incidents and groups, from alert records to the receiver.

Alert records come from the real engine (a few lone incidents, then a storm that is
grouped), the notifier plans PagerDuty's notifications, and the real sink posts them to
the contract-enforcing receiver (tests/support/receivers.py), which tracks the alerts
PagerDuty would hold open. Every trigger must be resolved with the same dedup_key:
an incident's by its resolve, a group's by its group resolve.
"""

from __future__ import annotations

import logging

import pytest

from sinks.errors import SinkError
from sinks.pagerduty import PagerDutySink, render
from streams.alerting.engine import AlertEngine
from streams.alerting.feedback import parse_feedback
from streams.alerting.grouping import Grouper
from streams.alerting.lifecycle import Timings
from streams.alerting.notify import Notifier
from streams.alerting.records import parse_scored
from streams.alerting.routing import Router
from tests.alerting.scored import T0, scored
from tests.sinks.factories import make_group, make_notification
from tests.support.receivers import PD_KEY

STORM = T0 + 600


def alert_records() -> tuple[AlertEngine, list[dict]]:
    """Two lone incidents (one acknowledged), then twelve streams at once (grouped)."""
    eng = AlertEngine(Timings(quiet_s=60, update_interval_s=30, cooldown_s=0, lateness_s=0),
                      Grouper(window_s=120, max_individual=3, top_n=10))
    docs = [scored(f"svc{s:02d}", T0 + t, False) for s in range(12) for t in range(0, 300, 30)]
    docs += [scored("svc00", T0 + 300, True), scored("svc00", T0 + 330, True, severity="critical"),
             scored("svc01", T0 + 310, True)]
    docs += [scored(f"svc{s:02d}", T0 + t, False) for s in range(12) for t in range(400, 600, 30)]
    docs += [scored(f"svc{s:02d}", STORM + s, True) for s in range(12)]
    docs += [scored(f"svc{s:02d}", STORM + t, False) for s in range(12) for t in range(60, 600, 30)]
    records = []
    for d in sorted(docs, key=lambda d: d["ts"]):
        records += eng.observe(parse_scored(d))
        if d["stream"] == "svc01" and d["ts"] == T0 + 310:
            inc = next(r["incident_id"] for r in records if r.get("stream") == "svc01")
            records += eng.feedback(parse_feedback({"kind": "ack", "incident_id": inc,
                                                    "ts": T0 + 311, "by": "alice"}))
    return eng, records


async def test_pagerduty_incident_and_group_lifecycle(pagerduty):
    _, records = alert_records()
    notifier = Notifier(Router([], ["pagerduty"], ["pagerduty"]))
    plans = [n for r in records for s, n in notifier.plan(r) if s == "pagerduty"]
    kinds = [n.kind for n in plans]
    assert {"trigger", "update", "acknowledge", "resolve", "group_trigger", "group_resolve"} <= set(kinds)
    sink = PagerDutySink(PD_KEY, base_url=pagerduty.base_url)
    open_after: dict[str, set[str]] = {}
    try:
        for n in plans:
            await sink.send(n)
            open_after.setdefault(n.kind, set()).update(pagerduty.open_alerts)
    finally:
        await sink.close()
    assert pagerduty.rejected == []
    assert len(pagerduty.accepted) == len(plans)
    groups = {n.incident_id for n in plans if n.is_group}
    assert groups and groups <= open_after["group_trigger"]  # a group alert was opened...
    assert pagerduty.open_alerts == set(), "alerts left open in PagerDuty"  # ...and every alert closed
    actions = {(n.kind, ev["event_action"]) for n, ev in zip(plans, pagerduty.accepted, strict=True)}
    assert actions == {("trigger", "trigger"), ("update", "trigger"), ("acknowledge", "acknowledge"),
                       ("resolve", "resolve"), ("group_trigger", "trigger"), ("group_resolve", "resolve")}
    for n, ev in zip(plans, pagerduty.accepted, strict=True):
        assert ev["dedup_key"] == n.incident_id  # the incident's (or group's) id, every time


async def test_pagerduty_group_resolve_is_resolve_event(pagerduty):
    group = make_group()
    sink = PagerDutySink(PD_KEY, base_url=pagerduty.base_url)
    try:
        await sink.send(group)
        assert pagerduty.open_alerts == {group.incident_id}
        await sink.send(make_group(kind="group_resolve", resolved_at=group.ts + 600))
    finally:
        await sink.close()
    trig, res = pagerduty.accepted
    assert trig["event_action"] == "trigger" and trig["dedup_key"] == group.incident_id
    assert res == {"routing_key": PD_KEY, "event_action": "resolve", "dedup_key": group.incident_id}
    assert pagerduty.open_alerts == set()


def test_every_notification_kind_maps_to_its_pagerduty_action():
    expected = {"trigger": "trigger", "update": "trigger", "group_trigger": "trigger",
                "acknowledge": "acknowledge", "resolve": "resolve", "group_resolve": "resolve"}
    for kind, action in expected.items():
        n = make_group(kind=kind) if kind.startswith("group") else make_notification(kind=kind)
        ev = render(n, PD_KEY)
        assert ev["event_action"] == action, kind
        assert ev["dedup_key"] == n.incident_id
        assert ("payload" in ev) == (action == "trigger"), kind


KEY = "K" * 32
TRIGGER_EVENT = {
    "client": "pynomaly-stream",
    "client_url": "https://pynomaly.example/incidents",
    "dedup_key": "inc-0123456789abcdef",
    "event_action": "trigger",
    "links": [{"href": "https://grafana.example.com/d/pynomaly-detectors?var-stream=payments.latency",
               "text": "Grafana dashboard"}],
    "payload": {
        "class": "anomaly",
        "component": "zscore",
        "custom_details": {
            "Anomalous events": "4", "Detector": "zscore", "Event time": "2026-09-21T14:13:50.000Z",
            "Incident": "inc-0123456789abcdef", "Opened": "2026-09-21T14:13:20.000Z",
            "Score": "0.9993 (peak 0.9999, threshold 0.999)", "Severity": "critical",
            "Stream": "payments.latency", "Top features": "value 100%",
            "Value": "812.5 (expected 95 .. 140)", "tags": {"service": "payments"},
        },
        "group": "payments",
        "severity": "critical",
        "source": "payments.latency",
        "summary": "[CRITICAL] payments.latency: anomaly, score 0.9999 (zscore)",
        "timestamp": "2026-09-21T14:13:50.000Z",
    },
    "routing_key": KEY,
}


def test_trigger_event_is_exactly_the_contract():
    """Every field a PagerDuty user sees, for one incident (reviewed by hand once)."""
    assert render(make_notification(), KEY, "https://pynomaly.example/incidents") == TRIGGER_EVENT


def test_group_trigger_event_lists_its_members():
    ev = render(make_group(n_members=2), KEY)
    assert ev["payload"]["source"] == "pynomaly-stream" and "client_url" not in ev
    assert ev["payload"]["summary"] == "[ERROR] 2 streams anomalous (group grp-feedbeef)"
    assert ev["payload"]["custom_details"]["members"] == [
        {"incident_id": "grp-0000", "opened": "2026-09-21T14:13:20.000Z", "peak_score": 0.999,
         "severity": "error", "stream": "svc0.errors"},
        {"incident_id": "grp-0001", "opened": "2026-09-21T14:13:21.000Z", "peak_score": 0.999,
         "severity": "error", "stream": "svc1.errors"}]


def test_limits_and_defaults_of_the_trigger_event():
    long = make_notification(incident_id="inc-" + "x" * 300, stream="s" * 300, tags={},
                             severity="none", dashboard_url=None)
    ev = render(long, KEY)
    assert len(ev["dedup_key"]) == 255 and ev["dedup_key"] == long.incident_id[:255]
    assert ev["payload"]["source"] == "s" * 254 + "…"  # cut to 255 characters, marked
    assert len(ev["payload"]["summary"]) <= 1024
    assert ev["payload"]["severity"] == "warning"  # "none" is not a PagerDuty severity
    assert ev["payload"]["group"] == "pynomaly"  # no service tag
    assert "links" not in ev and "tags" not in ev["payload"]["custom_details"]
    assert set(render(make_notification(kind="resolve"), KEY)) == {"routing_key", "event_action", "dedup_key"}


async def test_pagerduty_errors_say_what_to_fix(pagerduty, caplog):
    bad_key = PagerDutySink("W" * 32, base_url=pagerduty.base_url)
    wrong_url = PagerDutySink(PD_KEY, base_url=pagerduty.base_url + "/not-pagerduty")
    good = PagerDutySink(PD_KEY, base_url=pagerduty.base_url)
    try:
        with caplog.at_level(logging.WARNING), pytest.raises(SinkError) as info:
            await bad_key.send(make_notification())
        err = info.value
        assert (err.status, err.code, err.retriable, err.sink) == (400, "invalid_event", False, "pagerduty")
        assert "PagerDuty says the event is invalid ('routing_key' is invalid)" in err.message
        assert "rejected an event as invalid" in caplog.text
        with pytest.raises(SinkError) as info:
            await wrong_url.send(make_notification())
        assert info.value.status == 404 and not info.value.retriable
        assert "wrong endpoint; check PYNOMALY_PAGERDUTY_URL" in info.value.message
        pagerduty.fail("429", times=1, retry_after=3)
        with pytest.raises(SinkError) as info:
            await good.send(make_notification())
        assert info.value.retriable and info.value.retry_after == 3.0
        assert "throttled by PagerDuty; retrying with backoff" in info.value.message
        pagerduty.fail("500", times=1)
        with pytest.raises(SinkError) as info:
            await good.send(make_notification())
        assert info.value.retriable and "PagerDuty unavailable" in info.value.message
        with pytest.raises(SinkError) as info:
            await good.send(make_notification(kind="escalate"))
        assert not info.value.retriable and "cannot send a 'escalate' notification" in info.value.message
        assert pagerduty.requests == 4  # the unknown kind was refused before any request
    finally:
        for sink in (bad_key, wrong_url, good):
            await sink.close()
