"""Incident lifecycle: opening, updates, resolution by calm records and by watermark."""

from __future__ import annotations

import orjson
import pytest

from streams.alerting.engine import AlertEngine
from streams.alerting.grouping import Grouper
from streams.alerting.lifecycle import Timings
from streams.alerting.records import InvalidRecord, parse_scored
from tests.alerting.scored import T0, scored


def engine(**timings) -> AlertEngine:
    defaults = dict(quiet_s=60, update_interval_s=30, cooldown_s=0, lateness_s=0)
    defaults.update(timings)
    return AlertEngine(Timings(**defaults), Grouper(window_s=60, max_individual=100))


def feed(eng: AlertEngine, docs) -> list[dict]:
    out = []
    for d in docs:
        out += eng.observe(parse_scored(d))
    return out


def actions(recs) -> list[tuple[str, str]]:
    return [(r["action"], r["stream"]) for r in recs if r["type"] == "incident"]


def test_opens_updates_and_resolves_on_calm_records():
    docs = [scored("a", T0 + i, False) for i in range(10)]
    docs += [scored("a", T0 + 10 + i, True, score=0.9991 + i * 1e-4) for i in range(5)]
    docs += [scored("a", T0 + 15 + i * 10, False) for i in range(10)]
    recs = feed(engine(), docs)
    assert actions(recs) == [("opened", "a"), ("resolved", "a")]
    opened, resolved = recs
    assert opened["opened_at"] == T0 + 10 and opened["count"] == 1
    assert resolved["incident_id"] == opened["incident_id"]
    assert resolved["count"] == 5 and resolved["peak_score"] == pytest.approx(0.9995)
    assert resolved["resolved_at"] == T0 + 14 + 60 and resolved["reason"] == "quiet"
    assert resolved["ts"] == resolved["resolved_at"]


def test_min_duration_and_min_count_gate_opening():
    eng = engine(min_duration_s=20, min_count=3)
    short = [scored("a", T0 + i * 5, True) for i in range(4)]  # lasts 15 s
    assert feed(eng, short) == []
    long = [scored("a", T0 + 20 + i * 5, True) for i in range(3)]  # run now lasts 30 s
    recs = feed(eng, long)
    assert actions(recs) == [("opened", "a")] and recs[0]["opened_at"] == T0
    # a short run that ends: calm after quiet says nothing at all
    eng2 = engine(min_duration_s=20)
    assert feed(eng2, [scored("b", T0, True), scored("b", T0 + 200, False)]) == []


def test_updates_are_throttled_and_escalations_are_immediate():
    docs = [scored("a", T0 + i, True, severity="warning") for i in range(100)]
    docs.append(scored("a", T0 + 100, True, severity="critical"))
    recs = feed(engine(update_interval_s=30), docs)
    kinds = [r["action"] for r in recs]
    assert kinds.count("opened") == 1
    # 100 s of anomalies at one per second: updates at 30, 60, 90 + the escalation at 100
    assert kinds.count("updated") == 4 and recs[-1]["severity"] == "critical"


def test_silent_stream_resolves_by_watermark():
    eng = engine(lateness_s=5)
    recs = feed(eng, [scored("quiet", T0, True)])
    assert actions(recs) == [("opened", "quiet")]
    # the anomalous stream says nothing more; another stream's event time moves on
    recs = feed(eng, [scored("other", T0 + t, False) for t in range(0, 70, 5)])
    assert actions(recs) == [("resolved", "quiet")]
    assert recs[0]["resolved_at"] == T0 + 60


def test_gap_longer_than_quiet_splits_incidents_with_stable_ids():
    docs = [scored("a", T0, True), scored("a", T0 + 61, True)]
    recs = feed(engine(), docs)
    assert actions(recs) == [("opened", "a"), ("resolved", "a"), ("opened", "a")]
    assert recs[0]["incident_id"] != recs[2]["incident_id"]
    replay = feed(engine(), docs)
    assert [r["incident_id"] for r in replay] == [r["incident_id"] for r in recs]
    assert replay == recs


def test_late_records_do_not_move_the_incident_back():
    recs = feed(engine(), [scored("a", T0 + 10, True), scored("a", T0 + 5, True, value=99.0),
                           scored("a", T0 + 200, False)])
    assert recs[-1]["action"] == "resolved" and recs[-1]["count"] == 2
    assert recs[-1]["opened_at"] == T0 + 10 and recs[-1]["value"] == 1.0


def test_detectors_are_separate_incidents():
    recs = feed(engine(), [scored("a", T0, True, detector="zscore"),
                           scored("a", T0, True, detector="hst")])
    assert len({r["incident_id"] for r in recs}) == 2


def test_cooldown_keeps_a_flapping_stream_quiet():
    eng = engine(cooldown_s=600)
    # flaps every 300 s; each run resolves 60 s after it starts
    recs = feed(eng, [scored("a", T0 + t, True) for t in range(0, 1900, 300)])
    opened = [r for r in recs if r["action"] == "opened"]
    # cooldown counts from the last *notified* resolve (T0+60, then T0+960)
    assert [o["suppressed"] for o in opened] == [None, "cooldown", "cooldown", None,
                                                 "cooldown", "cooldown", None]


@pytest.mark.parametrize("doc", [
    None, [], {"stream": "", "ts": 1, "is_anomaly": True, "score": 1},
    {"stream": "a", "ts": "x", "is_anomaly": True, "score": 1},
    {"stream": "a", "ts": 1.0, "is_anomaly": "yes", "score": 1},
    {"stream": "a", "ts": 1.0, "is_anomaly": True, "score": float("nan")},
    {"stream": "a", "ts": 1.0, "is_anomaly": True, "score": 1, "severity": "huge"},
])
def test_bad_scored_records_are_named_not_raised_blindly(doc):
    with pytest.raises(InvalidRecord) as info:
        parse_scored(doc)
    assert info.value.reason in {"not_object", "bad_field"} and info.value.message


def test_snapshot_restore_keeps_an_open_incident_across_restart():
    import orjson

    first = engine(cooldown_s=600)
    opened = feed(first, [scored("a", T0, True, severity="warning"), scored("a", T0 + 5, True),
                          scored("b", T0, True)])
    doc = orjson.loads(orjson.dumps(first.snapshot("a")))  # it travels as JSON
    second = engine(cooldown_s=600)
    second.restore("a", doc)
    later = feed(second, [scored("a", T0 + 10, True, severity="critical"), scored("a", T0 + 100, False)])
    a_id = [r["incident_id"] for r in opened if r["stream"] == "a"][0]
    resolved = [r for r in later if r["action"] == "resolved"]
    assert [r["incident_id"] for r in resolved] == [a_id]
    assert resolved[0]["count"] == 3 and resolved[0]["severity"] == "critical"
    # the cooldown mark travels too; forget drops a stream that moved away
    again = feed(second, [scored("a", T0 + 200, True)])
    assert again[0]["suppressed"] == "cooldown"
    assert second.snapshot("a")["last_resolved"] == {"zscore": T0 + 70}
    second.forget({"a"})
    assert second.snapshot("a") == {"v": 1, "runs": {}, "last_resolved": {}}


def test_a_partition_ahead_in_event_time_does_not_resolve_another():
    eng = engine(lateness_s=0)
    out = []
    # partition 1 is consumed far ahead (a backlog elsewhere) before partition 0's spike
    for t in range(0, 1400, 10):
        out += eng.observe(parse_scored(scored("orders", T0 + t, False)), partition=1)
    for t in range(398, 520):
        out += eng.observe(parse_scored(scored("pay", T0 + t, 400 <= t < 403)), partition=0)
    assert actions(out) == [("opened", "pay"), ("resolved", "pay")]
    assert out[-1]["count"] == 3 and out[-1]["resolved_at"] == T0 + 402 + 60


def test_silent_stream_resolves_by_its_own_partitions_watermark_only():
    eng = engine(lateness_s=0)
    out = eng.observe(parse_scored(scored("quiet", T0, True)), partition=0)
    for t in range(0, 200, 5):
        out += eng.observe(parse_scored(scored("elsewhere", T0 + t, False)), partition=1)
    assert actions(out) == [("opened", "quiet")]  # another partition's time says nothing
    for t in range(0, 70, 5):
        out += eng.observe(parse_scored(scored("neighbour", T0 + t, False)), partition=0)
    assert actions(out) == [("opened", "quiet"), ("resolved", "quiet")]


def test_a_partition_gone_idle_resolves_its_incidents_at_last_anomaly_plus_quiet():
    eng = engine()
    recs = [r for d, p in [(scored("a", T0, False), 0), (scored("a", T0 + 1, True), 0),
                           (scored("b", T0 + 1, True), 1)]
            for r in eng.observe(parse_scored(d), p)]
    assert actions(recs) == [("opened", "a"), ("opened", "b")]
    # nothing more arrives: event time stands still, only the wall-clock sweep can end it
    assert eng.tick(T0 + 1, 0) == []
    idle = eng.idle(0)
    assert actions(idle) == [("resolved", "a")]  # partition 1's incident is not ours to end
    assert idle[0]["reason"] == "idle" and idle[0]["resolved_at"] == T0 + 1 + 60
    assert eng.idle(0) == [] and [i.stream for i in eng.open_incidents()] == ["b"]
    # the stream comes back: a new anomaly is a new incident, not the old one reopened
    again = eng.observe(parse_scored(scored("a", T0 + 5, True)), 0)
    assert actions(again) == [("opened", "a")] and again[0]["incident_id"] != idle[0]["incident_id"]


def test_idle_announces_a_group_whose_window_never_closed():
    eng = AlertEngine(Timings(quiet_s=60, cooldown_s=0, lateness_s=0), Grouper(window_s=30, max_individual=1))
    for i in range(3):
        eng.observe(parse_scored(scored(f"s{i}", T0 + i, True)), 0)
    idle = eng.idle(0)
    groups = [(r["action"], r["member_count"]) for r in idle if r["type"] == "group"]
    assert groups == [("opened", 2), ("resolved", 2)]
    assert sorted(actions(idle)) == [("resolved", "s0"), ("resolved", "s1"), ("resolved", "s2")]


def test_a_restart_keeps_group_members_grouped_and_their_group_resolves():
    def fresh() -> AlertEngine:
        return AlertEngine(Timings(quiet_s=60, cooldown_s=0, lateness_s=0),
                           Grouper(window_s=30, max_individual=1))

    before = fresh()
    for i in range(3):
        before.observe(parse_scored(scored(f"s{i}", T0 + i, True)), 0)
    grouped = {i.stream: i.group_id for i in before.open_incidents()}
    assert grouped["s0"] is None and grouped["s1"] == grouped["s2"] is not None
    after = fresh()  # kill -9: only the checkpointed per-stream state survives
    for stream in grouped:
        after.restore(stream, orjson.loads(orjson.dumps(before.snapshot(stream))))
    out = after.idle(0)
    groups = [(r["action"], r["group_id"], r["member_count"]) for r in out if r["type"] == "group"]
    assert groups == [("opened", grouped["s1"], 2), ("resolved", grouped["s1"], 2)]
    assert after.open_incidents() == []


@pytest.mark.parametrize("gap", [400, 100])
def test_with_default_settings_three_separated_spikes_are_three_notified_incidents(gap):
    from streams.alerting.agents import build_engine
    from streams.alerting.settings import load_alerting_settings

    settings = load_alerting_settings(environ={})
    assert gap > settings.quiet_s + settings.cooldown_s  # "well separated" by the defaults
    eng = build_engine(settings)
    spikes = (gap, 2 * gap, 3 * gap)
    docs = [scored("s", T0 + i, i in spikes, detector="rarity_likelihood") for i in range(3 * gap + 400)]
    recs = [r for d in docs for r in eng.observe(parse_scored(d))]
    opened = [r for r in recs if r["action"] == "opened"]
    assert [(r["opened_at"] - T0, r["suppressed"]) for r in opened] == [(t, None) for t in spikes]
    resolved = [r for r in recs if r["action"] == "resolved"]
    assert [r["resolved_at"] - T0 for r in resolved] == [t + settings.quiet_s for t in spikes]


def test_an_anomaly_exactly_quiet_s_later_opens_a_new_incident():
    """quiet_s is inclusive: a gap of exactly quiet_s ends the incident."""
    recs = feed(engine(quiet_s=60), [scored("a", T0, True), scored("a", T0 + 60, True)])
    assert actions(recs) == [("opened", "a"), ("resolved", "a"), ("opened", "a")]
    assert recs[0]["incident_id"] != recs[2]["incident_id"]
    assert recs[1]["resolved_at"] == T0 + 60


def test_an_anomaly_without_severity_opens_as_a_warning():
    recs = feed(engine(), [scored("a", T0, True, severity="none", score=0.9993)])
    assert actions(recs) == [("opened", "a")]
    assert recs[0]["severity"] == "warning" and recs[0]["score"] == 0.9993
    assert recs[0]["threshold"] == 0.999


def test_a_false_positive_resolves_only_its_incident_at_the_feedback_time():
    from streams.alerting.feedback import parse_feedback

    eng = engine(quiet_s=600)
    opened = feed(eng, [scored("b", T0, True), scored("a", T0 + 1, True)])  # b is found first
    a_id = next(r["incident_id"] for r in opened if r["stream"] == "a")
    recs = eng.feedback(parse_feedback({"kind": "false_positive", "incident_id": a_id,
                                        "ts": T0 + 20, "by": "alice"}))
    resolved = [r for r in recs if r.get("action") == "resolved"]
    assert [(r["stream"], r["incident_id"]) for r in resolved] == [("a", a_id)]
    assert resolved[0]["resolved_at"] == T0 + 20 and resolved[0]["reason"] == "false_positive"
    assert [i.stream for i in eng.open_incidents()] == ["b"]


def test_cooldown_ends_exactly_cooldown_s_after_the_resolve():
    eng = engine(quiet_s=10, cooldown_s=100)
    recs = feed(eng, [scored("a", T0, True), scored("b", T0, True),
                      scored("a", T0 + 10, False), scored("b", T0 + 10, False),  # resolved at T0 + 10
                      scored("a", T0 + 109, True),  # 99 s later: in the cooldown
                      scored("b", T0 + 110, True)])  # exactly 100 s later: heard again
    assert [r["resolved_at"] for r in recs if r["action"] == "resolved"] == [T0 + 10, T0 + 10]
    opened = [(r["stream"], r["suppressed"]) for r in recs if r["action"] == "opened"]
    assert opened == [("a", None), ("b", None), ("a", "cooldown"), ("b", None)]
