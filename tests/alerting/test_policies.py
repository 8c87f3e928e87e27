"""Silences, feedback, routing and the notifier's per-sink decisions."""

from __future__ import annotations

import pytest

from streams.alerting.engine import AlertEngine
from streams.alerting.feedback import parse_feedback
from streams.alerting.grouping import Grouper
from streams.alerting.lifecycle import Timings
from streams.alerting.notify import Notifier
from streams.alerting.records import InvalidRecord, parse_scored
from streams.alerting.routing import Route, Router
from streams.alerting.silences import Silence, SilenceSet
from streams.errors import SettingsError
from tests.alerting.scored import T0, scored

ALL = ("slack", "teams", "pagerduty", "webhook")


def engine(silences=(), fp_s=3600.0) -> AlertEngine:
    return AlertEngine(Timings(quiet_s=60, update_interval_s=30, cooldown_s=0, lateness_s=0),
                       Grouper(window_s=60, max_individual=100), SilenceSet(silences), fp_s)


def feed(eng, docs):
    out = []
    for d in docs:
        out += eng.observe(parse_scored(d))
    return out


def test_silence_by_glob_and_tag_with_expiry():
    sil = [Silence(stream="batch.*", ends_at=T0 + 100),
           Silence(tags={"env": "stag*"}, starts_at=T0, ends_at=T0 + 1000)]
    recs = feed(engine(sil), [
        scored("batch.nightly", T0 + 10, True),
        scored("batch.hourly", T0 + 200, True),  # after the first silence expired
        scored("api", T0 + 300, True, tags={"env": "staging"}),
        scored("api2", T0 + 300, True, tags={"env": "prod"}),
    ])
    opened = {r["stream"]: r["suppressed"] for r in recs if r["action"] == "opened"}
    assert opened == {"batch.nightly": "silence", "batch.hourly": None, "api": "silence", "api2": None}


def opened_suppression(silences, docs) -> dict[str, str | None]:
    return {r["stream"]: r["suppressed"] for r in feed(engine(silences), docs) if r["action"] == "opened"}


def test_silence_starts_at_is_respected():
    """A silence scheduled for later does not silence incidents that open before it starts."""
    sil = [Silence(stream="*", starts_at=T0 + 100, ends_at=T0 + 200)]
    assert opened_suppression(sil, [
        scored("before", T0 + 99, True),  # one second before the window
        scored("at-start", T0 + 100, True),  # starts_at is inclusive
        scored("inside", T0 + 150, True),
        scored("at-end", T0 + 200, True),  # ends_at is exclusive
    ]) == {"before": None, "at-start": "silence", "inside": "silence", "at-end": None}
    from_doc = Silence.from_dict({"stream": "x", "starts_at": T0 + 100, "ends_at": T0 + 200})
    assert not from_doc.matches("x", {}, T0 + 99) and from_doc.matches("x", {}, T0 + 100)


def test_two_tag_silence_needs_every_tag():
    """tags = {env: prod, region: eu-*}: an incident matching only one of them is heard."""
    sil = [Silence(stream="*", tags={"env": "prod", "region": "eu-*"})]
    assert opened_suppression(sil, [
        scored("both", T0, True, tags={"env": "prod", "region": "eu-west"}),
        scored("env-only", T0, True, tags={"env": "prod", "region": "us-east"}),
        scored("region-only", T0, True, tags={"env": "staging", "region": "eu-west"}),
        scored("one-missing", T0, True, tags={"env": "prod"}),
        scored("untagged", T0, True),
    ]) == {"both": "silence", "env-only": None, "region-only": None, "one-missing": None,
           "untagged": None}
    # The same silence declared in settings/feedback form.
    doc = Silence.from_dict({"tags": {"env": "prod", "region": "eu-*"}})
    assert doc.matches("s", {"env": "prod", "region": "eu-1"}, T0)
    assert not doc.matches("s", {"env": "prod", "region": "us-1"}, T0)
    assert not doc.matches("s", {"env": "dev", "region": "eu-1"}, T0)


def test_silence_stream_glob_and_tags_must_both_match():
    sil = [Silence(stream="pay.*", tags={"env": "prod"})]
    assert opened_suppression(sil, [
        scored("pay.api", T0, True, tags={"env": "prod"}),
        scored("auth.api", T0, True, tags={"env": "prod"}),
        scored("pay.db", T0, True, tags={"env": "dev"}),
    ]) == {"pay.api": "silence", "auth.api": None, "pay.db": None}


def test_removing_a_silence_removes_only_that_one():
    first, second = Silence(stream="a", id="sil-1"), Silence(stream="b", id="sil-2")
    silences = SilenceSet([first, second])
    assert silences.remove("sil-2") is second and silences.silences == [first]
    assert silences.remove("sil-unknown") is None and silences.remove("") is None
    assert silences.silences == [first]


def test_prune_drops_silences_that_ended():
    """ends_at is exclusive: at ts == ends_at the silence is over and pruned."""
    ended, running = Silence(ends_at=T0), Silence(ends_at=T0 + 1)
    silences = SilenceSet([ended, running])
    silences.prune(T0)
    assert silences.silences == [running]


def test_false_positive_resolves_and_suppresses_similar_alerts():
    eng = engine(fp_s=600)
    first = feed(eng, [scored("a", T0, True)])
    inc = first[0]["incident_id"]
    recs = eng.feedback(parse_feedback({"kind": "false_positive", "incident_id": inc,
                                        "ts": T0 + 5, "by": "alice"}))
    assert [r["action"] for r in recs] == ["feedback", "resolved"]
    assert recs[1]["reason"] == "false_positive" and recs[1]["incident_id"] == inc
    # strong enough for the stricter threshold the feedback also set (see test_strictness.py)
    later = feed(eng, [scored("a", T0 + 100, True, score=0.99999), scored("a", T0 + 300, False),
                       scored("a", T0 + 700, True, score=0.99999)])
    opened = [r["suppressed"] for r in later if r["action"] == "opened"]
    assert opened == ["false_positive", None]  # quiet for 600 s after the feedback, then heard


def test_true_positive_lifts_suppression_and_ack_is_recorded():
    eng = engine()
    inc = feed(eng, [scored("a", T0, True)])[0]["incident_id"]
    eng.feedback(parse_feedback({"kind": "false_positive", "incident_id": inc, "ts": T0 + 1}))
    eng.feedback(parse_feedback({"kind": "true_positive", "incident_id": inc, "ts": T0 + 2}))
    recs = feed(eng, [scored("a", T0 + 100, True)])
    new = [r for r in recs if r["action"] == "opened"][0]
    assert new["suppressed"] is None
    acked = eng.feedback(parse_feedback({"kind": "ack", "incident_id": new["incident_id"], "ts": T0 + 101}))
    assert [r["action"] for r in acked] == ["feedback", "acknowledged"]
    assert eng.feedback(parse_feedback({"kind": "ack", "incident_id": new["incident_id"],
                                        "ts": T0 + 102}))[1:] == []  # acknowledged once


def test_silence_feedback_adds_a_silence():
    eng = engine()
    eng.feedback(parse_feedback({"kind": "silence", "ts": T0, "stream": "x*", "ends_at": T0 + 50}))
    recs = feed(eng, [scored("x1", T0 + 1, True)])
    assert recs[0]["suppressed"] == "silence"


@pytest.mark.parametrize("doc", [{"kind": "nope", "ts": 1}, {"kind": "ack", "ts": 1},
                                 {"kind": "ack", "incident_id": "i", "ts": "now"}, 3])
def test_bad_feedback_is_named(doc):
    with pytest.raises(InvalidRecord):
        parse_feedback(doc)


def test_routing_by_glob_tags_severity_and_default():
    routes = [
        Route.from_dict({"streams": ["payments.*"], "min_severity": "error", "sinks": ["pagerduty"],
                         "continue": True}, 0, ALL),
        Route.from_dict({"tags": {"team": "data"}, "sinks": ["teams"]}, 1, ALL),
        Route.from_dict({"streams": "payments.*", "sinks": ["slack"]}, 2, ALL),
    ]
    r = Router(routes, default_sinks=["webhook"], enabled=ALL)
    assert r.sinks_for("payments.api", {}, "critical") == ["pagerduty", "slack"]
    assert r.sinks_for("payments.api", {}, "warning") == ["slack"]
    assert r.sinks_for("etl", {"team": "data"}, "info") == ["teams"]
    assert r.sinks_for("etl", {"team": "web"}, "info") == ["webhook"]
    # a disabled sink is never chosen; an empty default means every enabled sink
    r2 = Router(routes, default_sinks=[], enabled=("slack", "teams"))
    assert r2.sinks_for("payments.api", {}, "critical") == ["slack"]
    assert r2.sinks_for("other", {}, "info") == ["slack", "teams"]


def test_bad_routes_are_settings_errors():
    with pytest.raises(SettingsError, match="unknown sink"):
        Route.from_dict({"sinks": ["email"]}, 0, ALL)
    with pytest.raises(SettingsError, match="min_severity"):
        Route.from_dict({"sinks": ["slack"], "min_severity": "huge"}, 0, ALL)


def test_notifier_one_trigger_per_sink_updates_on_escalation_resolve_everywhere():
    eng = engine()
    notifier = Notifier(Router([], [], ALL), dashboard_url="https://grafana.example.com",
                        update_interval_s=0)
    recs = feed(eng, [scored("a", T0 + i, True, severity="warning") for i in range(70)]
                + [scored("a", T0 + 70, True, severity="critical"), scored("a", T0 + 200, False)])
    plans = [p for r in recs for p in notifier.plan(r)]
    by_kind: dict[str, list[str]] = {}
    for sink, n in plans:
        by_kind.setdefault(n.kind, []).append(sink)
    assert sorted(by_kind["trigger"]) == sorted(ALL)
    assert sorted(by_kind["resolve"]) == sorted(ALL)
    # updates at 30 s and 60 s go to the webhook only; the escalation reaches people too
    assert sorted(by_kind["update"]) == sorted(["webhook", "webhook", "webhook", "slack", "teams", "pagerduty"])
    n = plans[0][1]
    assert n.dashboard_url.startswith("https://grafana.example.com/d/pynomaly-detectors?var-stream=a")
    # a redelivered record is not planned twice
    assert notifier.plan(recs[0]) == []


def test_notifier_skips_suppressed_and_feedback_records():
    notifier = Notifier(Router([], [], ALL))
    eng = engine([Silence(stream="*")])
    recs = feed(eng, [scored("a", T0, True), scored("a", T0 + 100, False)])
    assert [p for r in recs for p in notifier.plan(r)] == []
    assert notifier.plan({"type": "incident", "action": "feedback", "incident_id": "x"}) == []


def test_bad_silence_feedback_is_a_settings_error_not_a_crash():
    eng = engine()
    # Refused when parsed now (issue 13: a silence of everything, and without a finite end);
    # the feedback agent dead-letters InvalidRecord and SettingsError alike.
    with pytest.raises((SettingsError, InvalidRecord)):
        eng.feedback(parse_feedback({"kind": "silence", "ts": T0, "ends_at": "soon"}))
    with pytest.raises((SettingsError, InvalidRecord)):
        eng.feedback(parse_feedback({"kind": "silence", "ts": T0, "stream": "x*", "ends_at": "soon"}))
