"""Every alert links to the stream explorer, focused on the stream and the incident's time."""

from __future__ import annotations

import urllib.parse

import orjson
import pytest

from sinks.pagerduty import PagerDutySink
from sinks.slack import SlackSink
from sinks.teams import TeamsSink
from sinks.webhook import WebhookSink
from streams.alerting.notify import Notifier, explore_base
from streams.alerting.routing import Router
from streams.alerting.settings import load_alerting_settings
from streams.errors import SettingsError
from tests.sinks.factories import T0, make_group, make_notification
from tests.support.receivers import PD_KEY

LINK = "http://explore.example.com:6066/explore?stream=payments.latency&at=1790000000&window=6h"


def test_notifier_links_the_incident_stream_and_time():
    notifier = Notifier(Router([], [], ["webhook"]), explore_url="http://w.example:6066/")
    rec = {"type": "incident", "action": "opened", "incident_id": "inc-9", "seq": 1, "stream": "pay/x y",
           "detector": "rarity_likelihood", "severity": "critical", "ts": T0 + 30, "opened_at": T0 + 0.7,
           "score": 0.99999, "peak_score": 0.99999, "threshold": 0.9999, "count": 1, "value": 5.0}
    [(sink, n)] = notifier.plan(rec)
    url = urllib.parse.urlsplit(n.explore_url)
    assert (url.scheme, url.netloc, url.path) == ("http", "w.example:6066", "/explore")
    query = urllib.parse.parse_qs(url.query)
    assert query == {"stream": ["pay/x y"], "at": [str(int(T0))], "window": ["6h"], "incident": ["inc-9"]}
    assert Notifier(Router([], [], ["webhook"])).build(rec, "trigger").explore_url is None


def test_default_base_is_the_workers_own_address():
    assert explore_base("", "127.0.0.1", 6070) == "http://127.0.0.1:6070"
    assert explore_base("https://explore.example.com", "127.0.0.1", 6070) == "https://explore.example.com"


async def test_slack_shows_an_explorer_button(slack):
    sink = SlackSink(slack.url)
    await sink.send(make_notification(explore_url=LINK))
    await sink.send(make_notification(explore_url=LINK, dashboard_url=None))
    await sink.close()
    assert slack.rejected == []
    for msg in slack.accepted:
        buttons = {b["action_id"]: b["url"] for b in msg["blocks"][-1]["elements"]}
        assert buttons["open_explorer"] == LINK
    assert "open_dashboard" in {b["action_id"] for b in slack.accepted[0]["blocks"][-1]["elements"]}


async def test_teams_card_opens_the_explorer(teams):
    sink = TeamsSink(teams.url)
    await sink.send(make_notification(explore_url=LINK))
    await sink.close()
    assert teams.rejected == []
    actions = teams.accepted[0]["attachments"][0]["content"]["actions"]
    assert {"type": "Action.OpenUrl", "title": "Open in explorer", "url": LINK} in actions


async def test_pagerduty_links_the_explorer(pagerduty):
    sink = PagerDutySink(PD_KEY, base_url=pagerduty.base_url)
    await sink.send(make_notification(explore_url=LINK))
    await sink.send(make_group(12, explore_url="http://w:6066/explore?at=1790000000"))
    await sink.close()
    assert pagerduty.rejected == []
    links = pagerduty.accepted[0]["links"]
    assert {"href": LINK, "text": "Stream explorer"} in links
    assert links[0]["href"] == LINK  # first: the link a responder needs


async def test_webhook_payload_carries_the_explorer_link(webhook):
    sink = WebhookSink(webhook.url, "s3cr3t-hmac-key")
    await sink.send(make_notification(explore_url=LINK))
    await sink.close()
    assert webhook.accepted[0]["explore_url"] == LINK
    assert orjson.loads(orjson.dumps(webhook.accepted[0]))["stream"] == "payments.latency"


def test_explore_url_setting_must_be_http():
    assert load_alerting_settings({"PYNOMALY_EXPLORE_URL": "https://x.example"}).explore_url == "https://x.example"
    with pytest.raises(SettingsError, match="PYNOMALY_EXPLORE_URL: expected an http"):
        load_alerting_settings({"PYNOMALY_EXPLORE_URL": "explore.example.com"})
