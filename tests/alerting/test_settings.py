"""AlertingSettings from env and TOML; secrets never reach logs, errors or records."""

from __future__ import annotations

import logging

import pytest

from sinks import SinkError
from sinks.notification import Notification
from streams.alerting.factory import build_deliveries, build_sinks
from streams.alerting.settings import load_alerting_settings
from streams.errors import SettingsError
from tests.sinks.factories import make_notification
from tests.support.receivers import PD_KEY, PagerDutyReceiver, SlackReceiver, TeamsReceiver

SLACK_SECRET_PATH = "/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX"


def test_sink_enabled_when_its_url_or_key_is_set():
    s = load_alerting_settings({}, {})
    assert s.enabled_sinks == []
    s = load_alerting_settings({"PYNOMALY_SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/a",
                                "PYNOMALY_PAGERDUTY_ROUTING_KEY": PD_KEY}, {})
    assert s.enabled_sinks == ["slack", "pagerduty"]
    assert set(build_sinks(s)) == {"slack", "pagerduty"}
    s = load_alerting_settings({"PYNOMALY_NOTIFY_TOPIC": "team.alerts"}, {})
    assert s.enabled_sinks == ["kafka"]

    async def produce(key: bytes, value: bytes) -> None:
        raise ConnectionError("broker down")

    assert set(build_sinks(s)) == set() and set(build_sinks(s, produce)) == {"kafka"}


def test_toml_table_routes_silences_and_timings():
    table = {"quiet_s": 120, "min_duration_s": 30, "cooldown_s": 0,
             "routes": [{"streams": ["pay*"], "min_severity": "critical", "sinks": ["pagerduty"]}],
             "silences": [{"stream": "batch.*", "ends_at": 2e9}]}
    env = {"PYNOMALY_PAGERDUTY_ROUTING_KEY": PD_KEY, "PYNOMALY_TEAMS_WEBHOOK_URL": "https://x.test/wf",
           "PYNOMALY_QUIET_S": "90"}
    s = load_alerting_settings(env, table)
    assert s.timings().quiet_s == 90.0 and s.timings().min_duration_s == 30.0  # env beats TOML
    r = s.router()
    assert r.sinks_for("payments", {}, "critical") == ["pagerduty"]
    assert sorted(r.sinks_for("payments", {}, "error")) == ["pagerduty", "teams"]
    assert s.silence_set().match("batch.x", {}, 1.0e9) is not None


@pytest.mark.parametrize(("env", "table", "match"), [
    ({"PYNOMALY_PAGERDUTY_ROUTING_KEY": "short-key-value"}, {}, "32-character"),
    ({"PYNOMALY_SLACK_WEBHOOK_URL": "hooks.slack.com/x"}, {}, "http"),
    ({"PYNOMALY_WEBHOOK_URL": "https://a.test/h"}, {}, "WEBHOOK_SECRET"),
    ({}, {"routes": [{"sinks": ["email"]}]}, "unknown sink"),
    ({}, {"quiet_s": 0}, "quiet_s"),
    ({}, {"silences": [{"ends_at": "tomorrow"}]}, "silences"),
    ({}, {"bogus": 1}, "unknown setting"),
])
def test_bad_settings_name_the_problem_without_the_secret(env, table, match):
    with pytest.raises(SettingsError, match=match) as info:
        load_alerting_settings(env, table)
    assert "short-key-value" not in str(info.value)
    assert "hooks.slack.com/x" not in str(info.value)


async def test_no_secret_in_logs_errors_or_records(caplog):
    slack, teams, pd = SlackReceiver(), TeamsReceiver(), PagerDutyReceiver()
    for r in (slack, teams, pd):
        await r.start()
    wrong_key = "ZZZZ" + PD_KEY[4:]
    env = {
        "PYNOMALY_SLACK_WEBHOOK_URL": slack.base_url + SLACK_SECRET_PATH,
        "PYNOMALY_TEAMS_WEBHOOK_URL": teams.url + "?sig=T3AMS-S1GNATURE",
        "PYNOMALY_PAGERDUTY_ROUTING_KEY": wrong_key, "PYNOMALY_PAGERDUTY_URL": pd.base_url,
    }
    s = load_alerting_settings(env, {"max_attempts": 2, "base_backoff_s": 0.01, "deadline_s": 1})
    secrets = [SLACK_SECRET_PATH, "T3AMS-S1GNATURE", wrong_key]
    slack.fail("500")
    await teams.down()
    deliveries = build_deliveries(s)
    errors: list[SinkError] = []
    with caplog.at_level(logging.DEBUG):
        for d in deliveries.values():
            out = await d.deliver(make_notification())
            assert not out.delivered and out.error is not None
            errors.append(out.error)
        slack.heal()
        slack.archived = True
        errors.append((await deliveries["slack"].deliver(make_notification())).error)
    texts = [caplog.text, repr(s), str(s)] + [str(e) for e in errors] + [repr(e) for e in errors]
    texts.append(repr(make_notification().as_dict()))
    for secret in secrets:
        for t in texts:
            assert secret not in t
    assert "channel_is_archived" in caplog.text  # errors are logged by name, secrets are not
    assert errors[0].retriable and not errors[-1].retriable
    for d in deliveries.values():
        await d.sink.close()
    for r in (slack, teams, pd):
        await r.stop()


def test_notification_carries_no_settings():
    fields = set(Notification.__dataclass_fields__)
    assert not fields & {"routing_key", "webhook_url", "secret"}


def test_every_alerting_setting_is_described():
    from streams.alerting.settings import describe_alerting_settings

    rows = {env: (default, doc) for env, default, doc in describe_alerting_settings()}
    for name in ("PYNOMALY_SLACK_WEBHOOK_URL", "PYNOMALY_TEAMS_WEBHOOK_URL", "PYNOMALY_PAGERDUTY_ROUTING_KEY",
                 "PYNOMALY_PAGERDUTY_URL", "PYNOMALY_WEBHOOK_URL", "PYNOMALY_WEBHOOK_SECRET",
                 "PYNOMALY_DASHBOARD_URL", "[[alerting.routes]]"):
        assert rows[name][1]
    assert rows["PYNOMALY_PAGERDUTY_URL"][0] == "https://events.pagerduty.com"
    assert rows["PYNOMALY_QUIET_S"][0] == "60.0"
