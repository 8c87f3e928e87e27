"""A storm: 1,000 anomalies over 200 streams within five minutes of event time."""

from __future__ import annotations

import collections

from streams.alerting.engine import AlertEngine
from streams.alerting.grouping import Grouper
from streams.alerting.lifecycle import Timings
from streams.alerting.notify import Notifier
from streams.alerting.records import parse_scored
from streams.alerting.routing import Route, Router
from tests.alerting.scored import T0, scored

SINKS = ("slack", "teams", "pagerduty", "webhook")
STORM_START = T0 + 600


def storm_records() -> list[dict]:
    docs = []
    for s in range(200):  # ten quiet minutes first
        docs += [scored(f"svc{s:03d}", T0 + t, False) for t in range(0, 600, 30)]
    for k in range(1000):  # 5 anomalies per stream, 60 s apart, spread over 300 s
        sev = "critical" if k % 97 == 0 else "error"
        docs.append(scored(f"svc{k % 200:03d}", STORM_START + k * 0.3, True,
                           score=0.999 + (k % 10) * 1e-4, severity=sev))
    for s in range(200):  # then fifteen calm minutes
        docs += [scored(f"svc{s:03d}", STORM_START + 300 + t, False) for t in range(0, 900, 30)]
    return sorted(docs, key=lambda d: d["ts"])


def run(docs):
    eng = AlertEngine(Timings(), Grouper(window_s=120, max_individual=5, top_n=10))
    routes = [Route.from_dict({"streams": ["svc0*"], "min_severity": "critical",
                               "sinks": ["pagerduty"], "continue": True}, 0, SINKS)]
    notifier = Notifier(Router(routes, ["slack", "teams", "webhook"], SINKS))
    records = [r for d in docs for r in eng.observe(parse_scored(d))]
    plans = [p for r in records for p in notifier.plan(r)]
    return eng, notifier, records, plans


def test_storm_is_one_trigger_per_incident_per_sink_plus_group_summaries():
    eng, notifier, records, plans = run(storm_records())
    opened = [r for r in records if r["type"] == "incident" and r["action"] == "opened"]
    resolved = [r for r in records if r["type"] == "incident" and r["action"] == "resolved"]
    groups = [r for r in records if r["type"] == "group"]
    assert len(opened) == 200  # one incident per stream: the anomalies form one run each
    assert {r["incident_id"] for r in resolved} == {r["incident_id"] for r in opened}
    assert eng.open_incidents() == []  # every incident resolved once the streams calmed down
    triggers = collections.Counter((n.incident_id, s) for s, n in plans if n.kind.endswith("trigger"))
    assert max(triggers.values()) == 1
    individual = [(s, n) for s, n in plans if n.kind == "trigger"]
    summaries = [(s, n) for s, n in plans if n.kind == "group_trigger"]
    per_sink = collections.Counter(s for s, _ in individual)
    assert max(per_sink.values()) <= 5  # only the first five incidents are sent one by one
    assert [g["action"] for g in groups] == ["opened", "resolved"]
    assert groups[0]["member_count"] == 195 and len(groups[0]["members"]) == 10
    group_resolves = {s for s, n in plans if n.kind == "group_resolve"}
    # routes see every member (svc0* critical pages PagerDuty), and the resolve goes where
    # the trigger went
    assert {s for s, _ in summaries} == group_resolves == {"slack", "teams", "webhook", "pagerduty"}
    for inc_id in {n.incident_id for _, n in individual}:
        assert {s for s, n in plans if n.incident_id == inc_id and n.kind == "trigger"} == \
            {s for s, n in plans if n.incident_id == inc_id and n.kind == "resolve"}
    total_per_sink = collections.Counter(s for s, _ in plans)
    # 5 triggers + 5 resolves + 1 summary + 1 group resolve (+ updates for machines only)
    assert total_per_sink["slack"] <= 12 and total_per_sink["teams"] <= 12
    assert notifier.told == {}  # nothing left waiting for a resolve


def test_storm_replay_is_identical_and_redelivery_sends_nothing_twice():
    docs = storm_records()
    _, notifier, records, plans = run(docs)
    _, _, records2, plans2 = run(docs)
    assert records == records2 and [(s, n) for s, n in plans] == [(s, n) for s, n in plans2]
    assert [p for r in records for p in notifier.plan(r)] == []  # redelivered: all deduplicated


def test_a_long_storm_stays_grouped():
    eng = AlertEngine(Timings(quiet_s=30, cooldown_s=0), Grouper(window_s=60, max_individual=5))
    docs = [scored(f"s{k}", T0 + k * 2.0, True) for k in range(600)]  # new stream every 2 s, 20 min
    docs.append(scored("tail", T0 + 2000, False))
    records = [r for d in docs for r in eng.observe(parse_scored(d))]
    opened = [r for r in records if r["type"] == "incident" and r["action"] == "opened"]
    individual = [r for r in opened if r["group_id"] is None]
    groups = [r for r in records if r["type"] == "group" and r["action"] == "opened"]
    assert len(individual) == 5 and len(groups) == 20  # one summary per minute of storm
    assert sum(g["member_count"] for g in groups) == 595
    assert len([r for r in records if r["type"] == "group" and r["action"] == "resolved"]) == 20
