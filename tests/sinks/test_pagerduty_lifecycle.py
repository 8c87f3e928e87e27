"""The PagerDuty lifecycle of incidents and groups, from alert records to the receiver.

Alert records come from the real engine (a few lone incidents, then a storm that is
grouped), the notifier plans PagerDuty's notifications, and the real sink posts them to
the contract-enforcing receiver (tests/support/receivers.py), which tracks the alerts
PagerDuty would hold open. Every trigger must be resolved with the same dedup_key:
an incident's by its resolve, a group's by its group resolve.
"""

from __future__ import annotations

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
