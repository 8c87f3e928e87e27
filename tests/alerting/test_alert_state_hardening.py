"""Issue 13, finding 9: alerting state is signed; feedback is validated, bounded, audited.

On main one unsigned record ``{"last_resolved":{"zscore":1e18}}`` in the alerting state
topic suppressed a stream's incidents forever, a value ``[1]`` made every restore of its
partition fail, and a feedback ``{"kind":"silence","stream":"*"}`` silenced everything
forever with no audit record.
"""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaProducer

from streams.alerting.engine import AlertEngine
from streams.alerting.feedback import parse_feedback
from streams.alerting.lifecycle import Timings
from streams.alerting.records import InvalidRecord, parse_scored
from streams.alerting.state import AlertStateStore, state_topic
from streams.settings import load_settings
from tests.alerting.scored import T0, scored
from tests.support.kafka import create_topics, topic_env, unique

NOW = T0 + 100


def engine() -> AlertEngine:
    return AlertEngine(Timings(quiet_s=60, cooldown_s=0, lateness_s=0))


@pytest.mark.integration
async def test_forged_and_malformed_alerting_state_is_rejected(kafka_bootstrap):
    env = {**topic_env(unique("astate"), 1), "PYNOMALY_KAFKA_BOOTSTRAP": kafka_bootstrap,
           "PYNOMALY_DEV_BROKER": "true"}
    settings = load_settings(environ=env)
    create_topics(kafka_bootstrap, [settings.topic_scores, settings.topic_alerts, state_topic(settings)], 1)
    eng = engine()
    store = AlertStateStore(settings, eng)
    assert not store.replayed("honest", 0, 5)
    eng.observe(parse_scored(scored("honest", T0, True)), 0)
    store.touch("honest", 5)
    try:
        assert await store.flush() == 1
    finally:
        await store.stop()
    # A writer to the state topic without the key:
    p = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await p.start()
    try:
        for key, value in ((b"victim", b'{"last_resolved":{"zscore":1e18},"offset":-1}'),
                           (b"poison", b"[1]")):
            await p.send_and_wait(state_topic(settings), value, key=key, partition=0)
    finally:
        await p.stop()
    fresh = engine()
    again = AlertStateStore(settings, fresh)
    try:
        await again.ensure_restored({0})  # raised on main: '[1]' has no .get
    finally:
        await again.stop()
    assert [i.stream for i in fresh.open_incidents()] == ["honest"]
    assert not [k for k in fresh.tracker.last_resolved if k[0] == "victim"]


def test_feedback_silencing_everything_is_refused():
    for doc in ({"kind": "silence", "ts": T0, "stream": "*"},
                {"kind": "silence", "ts": T0, "stream": "**", "ends_at": T0 + 60},
                {"kind": "silence", "ts": T0, "stream": "?*", "ends_at": T0 + 60}):
        with pytest.raises(InvalidRecord, match="everything"):
            parse_feedback(doc, now=NOW)


def test_feedback_silences_are_bounded_in_time():
    with pytest.raises(InvalidRecord, match="ends_at"):
        parse_feedback({"kind": "silence", "ts": T0, "stream": "batch.*"}, now=NOW)  # forever
    with pytest.raises(InvalidRecord, match="at most"):
        parse_feedback({"kind": "silence", "ts": T0, "stream": "batch.*", "ends_at": T0 + 10 ** 9},
                       now=NOW)
    fb = parse_feedback({"kind": "silence", "ts": T0, "stream": "batch.*", "ends_at": T0 + 3600}, now=NOW)
    assert fb.silence is not None


def test_feedback_times_far_ahead_of_the_clock_are_refused():
    # A false positive at ts 1e18 would suppress the stream's incidents until then.
    with pytest.raises(InvalidRecord, match="'ts'"):
        parse_feedback({"kind": "false_positive", "incident_id": "inc-1", "ts": 1e18}, now=NOW)
    assert parse_feedback({"kind": "ack", "incident_id": "inc-1", "ts": NOW + 60}, now=NOW).ts == NOW + 60


def test_silence_feedback_is_audited():
    eng = engine()
    recs = eng.feedback(parse_feedback({"kind": "silence", "ts": T0, "stream": "batch.*",
                                        "ends_at": T0 + 3600, "by": "mallory"}, now=NOW))
    assert [(r["type"], r["action"], r["via"], r["by"]) for r in recs] == [
        ("silence", "created", "feedback", "mallory")]
    assert recs[0]["stream"] == "batch.*" and recs[0]["ends_at"] == T0 + 3600
