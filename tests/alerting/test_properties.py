"""Properties of the incident engine over arbitrary record sequences (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.alerting.engine import AlertEngine
from streams.alerting.grouping import Grouper
from streams.alerting.lifecycle import Timings
from streams.alerting.notify import Notifier
from streams.alerting.records import parse_scored
from streams.alerting.routing import Router
from tests.alerting.scored import T0, scored

SINKS = ("slack", "teams", "pagerduty", "webhook")

record = st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.floats(0, 3000), st.booleans(),
                   st.sampled_from(["warning", "error", "critical"]))


def run(records, timings):
    eng = AlertEngine(timings, Grouper(window_s=100, max_individual=2, top_n=3))
    notifier = Notifier(Router([], [], SINKS), update_interval_s=0)
    docs = [scored(s, T0 + t, a, severity=sev if a else None) for s, t, a, sev in records]
    docs.sort(key=lambda d: d["ts"])  # mostly ordered input, as a partition delivers it
    out = [r for d in docs for r in eng.observe(parse_scored(d))]
    # then every stream calms down for longer than the quiet period
    end = (docs[-1]["ts"] if docs else T0) + timings.quiet_s + timings.lateness_s + 1000
    for s in "abcd":
        out += eng.observe(parse_scored(scored(s, end, False)))
    plans = [p for r in out for p in notifier.plan(r)]
    return eng, out, plans


@settings(max_examples=80, deadline=None)
@given(st.lists(record, max_size=120),
       st.sampled_from([0.0, 5.0, 50.0]), st.sampled_from([10.0, 60.0, 300.0]),
       st.sampled_from([0.0, 120.0]))
def test_every_incident_opens_once_and_resolves_once(records, min_duration, quiet, cooldown):
    timings = Timings(min_duration_s=min_duration, quiet_s=quiet, cooldown_s=cooldown, lateness_s=5)
    eng, out, plans = run(records, timings)
    incidents = [r for r in out if r["type"] == "incident"]
    opened = [r["incident_id"] for r in incidents if r["action"] == "opened"]
    resolved = [r["incident_id"] for r in incidents if r["action"] == "resolved"]
    assert len(opened) == len(set(opened))
    assert sorted(opened) == sorted(resolved)
    assert eng.open_incidents() == []
    for inc_id in opened:  # per incident: seq strictly increasing, opened first, resolved last
        seqs = [r for r in incidents if r["incident_id"] == inc_id]
        assert [r["seq"] for r in seqs] == sorted({r["seq"] for r in seqs})
        assert seqs[0]["action"] == "opened" and seqs[-1]["action"] == "resolved"
        assert seqs[-1]["resolved_at"] >= seqs[0]["opened_at"]
    triggers = [(n.incident_id, s) for s, n in plans if n.kind.endswith("trigger")]
    assert len(triggers) == len(set(triggers))  # at most one trigger per incident per sink
    groups = [r for r in out if r["type"] == "group"]
    assert sorted(g["group_id"] for g in groups if g["action"] == "opened") == \
        sorted(g["group_id"] for g in groups if g["action"] == "resolved")


@settings(max_examples=30, deadline=None)
@given(st.lists(record, max_size=80))
def test_replay_is_deterministic(records):
    timings = Timings(quiet_s=60, cooldown_s=30, lateness_s=5)
    assert run(records, timings)[1] == run(records, timings)[1]
