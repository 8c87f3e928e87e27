"""Each vendor sink against its contract-enforcing local receiver, over real HTTP."""

from __future__ import annotations

import dataclasses
import logging

import orjson
import pytest

from sinks import SinkError
from sinks.pagerduty import PagerDutySink
from sinks.slack import SlackSink
from sinks.slack import render as slack_render
from sinks.teams import MAX_BYTES, TeamsSink
from sinks.webhook import WebhookSink, verify
from tests.sinks.factories import make_group, make_notification
from tests.support.receivers import PD_KEY


async def test_slack_trigger_is_valid_block_kit(slack):
    sink = SlackSink(slack.url)
    await sink.send(make_notification())
    await sink.close()
    assert slack.rejected == []
    msg = slack.accepted[0]
    assert "payments.latency" in msg["text"]
    assert msg["blocks"][0]["type"] == "header"
    fields = " ".join(f["text"] for f in msg["blocks"][1]["fields"])
    assert "812.5 (expected 95 .. 140)" in fields and "0.9993 (peak 0.9999" in fields
    assert "inc-0123456789abcdef" in msg["blocks"][2]["elements"][0]["text"]
    button = msg["blocks"][-1]["elements"][0]
    assert button["url"].startswith("https://grafana.example.com/d/pynomaly-detectors")


async def test_slack_resolve_keeps_within_ten_fields(slack):
    n = make_notification(kind="resolve", resolved_at=1_790_000_400.0,
                          contributions=(("a", 0.5), ("b", 0.3), ("c", 0.2)))
    sink = SlackSink(slack.url)
    await sink.send(n)
    await sink.close()
    fields = [f["text"] for f in slack.accepted[0]["blocks"][1]["fields"]]
    assert len(fields) == 10 and any("*Resolved*" in f for f in fields)
    assert slack.accepted[0]["text"].startswith("[RESOLVED] payments.latency")


async def test_slack_escapes_and_truncates_hostile_content(slack):
    n = make_notification(stream="<!channel> & " + "x" * 5000, value={f"f{i}": 1.0 for i in range(50)})
    sink = SlackSink(slack.url)
    await sink.send(n)
    await sink.send(make_group(500))
    await sink.close()
    assert slack.rejected == [] and len(slack.accepted) == 2
    msg = slack.accepted[0]
    mrkdwn = [msg["text"]] + [f["text"] for f in msg["blocks"][1]["fields"]]
    assert all("<!channel>" not in t for t in mrkdwn)  # escaped: no @channel ping
    assert any("&lt;!channel&gt;" in t for t in mrkdwn)
    assert "…and 490 more" in orjson.dumps(slack.accepted[1]).decode()


@pytest.mark.parametrize(("setup", "status", "code", "retriable"), [
    ("archived", 410, "channel_is_archived", False),
    ("badpath", 404, "no_service", False),
    ("500", 500, "rollup_error", True),
])
async def test_slack_errors_are_named(slack, caplog, setup, status, code, retriable):
    url = slack.url
    if setup == "archived":
        slack.archived = True
    elif setup == "badpath":
        url = slack.base_url + "/services/revoked"
    else:
        slack.fail("500")
    sink = SlackSink(url)
    with caplog.at_level(logging.WARNING), pytest.raises(SinkError) as info:
        await sink.send(make_notification())
    await sink.close()
    err = info.value
    assert (err.status, err.code, err.retriable) == (status, code, retriable)
    assert code in caplog.text


async def test_slack_rejects_payload_without_text_by_contract(slack):
    import aiohttp

    async with aiohttp.ClientSession() as s:
        body = slack_render(make_notification())
        del body["text"]
        async with s.post(slack.url, json=body) as r:
            assert (r.status, await r.text()) == (400, "no_text")
        body = slack_render(make_notification())
        body["blocks"][0]["text"]["text"] = "x" * 151
        async with s.post(slack.url, json=body) as r:
            assert (r.status, await r.text()) == (400, "invalid_blocks")


async def test_slack_429_carries_retry_after(slack):
    slack.fail("429", times=1, retry_after=7)
    sink = SlackSink(slack.url)
    with pytest.raises(SinkError) as info:
        await sink.send(make_notification())
    assert info.value.retriable and info.value.retry_after == 7.0
    await sink.send(make_notification())  # the fault was one-shot
    await sink.close()
    assert len(slack.accepted) == 1


async def test_teams_card_accepted_with_202_and_kept_under_28kb(teams):
    sink = TeamsSink(teams.url, top_n=10_000)
    await sink.send(make_notification())
    big = make_group(3000, members=make_group(3000).members * 1)
    big = dataclasses.replace(big, members=tuple(
        dataclasses.replace(m, stream=m.stream + "-" + "y" * 60) for m in make_group(3000).members))
    await sink.send(big)
    await sink.close()
    assert teams.rejected == [] and len(teams.accepted) == 2
    card = teams.accepted[0]["attachments"][0]["content"]
    assert card["type"] == "AdaptiveCard" and card["actions"][0]["type"] == "Action.OpenUrl"
    facts = {f["title"]: f["value"] for f in card["body"][1]["facts"]}
    assert facts["Stream"] == "payments.latency" and facts["Severity"] == "critical"
    assert len(orjson.dumps(teams.accepted[1])) <= MAX_BYTES


async def test_teams_receiver_enforces_size_and_shape(teams):
    import aiohttp

    async with aiohttp.ClientSession() as s:
        async with s.post(teams.url, json={"type": "message", "attachments": [
                {"contentType": "application/json", "content": {}}]}) as r:
            assert r.status == 400
        huge = {"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
                "content": {"type": "AdaptiveCard", "version": "1.4",
                            "body": [{"type": "TextBlock", "text": "x" * 30000}]}}]}
        async with s.post(teams.url, json=huge) as r:
            assert r.status == 413


async def test_teams_5xx_and_down_are_retriable(teams):
    sink = TeamsSink(teams.url)
    teams.fail("500", times=1)
    with pytest.raises(SinkError) as info:
        await sink.send(make_notification())
    assert info.value.retriable and info.value.status == 500
    await teams.down()
    with pytest.raises(SinkError) as info:
        await sink.send(make_notification())
    assert info.value.retriable and info.value.status is None
    await teams.up()
    await sink.send(make_notification())
    await sink.close()
    assert len(teams.accepted) == 1


async def test_pagerduty_trigger_then_resolve_share_dedup_key(pagerduty):
    sink = PagerDutySink(PD_KEY, base_url=pagerduty.base_url)
    n = make_notification(stream="s" * 2000)
    await sink.send(n)
    await sink.send(dataclasses.replace(n, kind="resolve", resolved_at=n.ts + 60))
    await sink.close()
    assert pagerduty.rejected == []
    trig, res = pagerduty.accepted
    assert trig["event_action"] == "trigger" and res["event_action"] == "resolve"
    assert trig["dedup_key"] == res["dedup_key"] == "inc-0123456789abcdef"
    p = trig["payload"]
    assert len(p["summary"]) <= 1024 and p["severity"] == "critical"
    assert p["timestamp"].endswith("Z") and p["custom_details"]["Incident"] == "inc-0123456789abcdef"
    assert set(res) == {"routing_key", "event_action", "dedup_key"}
    assert pagerduty.open_alerts == set()


async def test_pagerduty_400_is_final_and_429_retriable(pagerduty, caplog):
    bad = PagerDutySink("W" * 32, base_url=pagerduty.base_url)
    with caplog.at_level(logging.WARNING), pytest.raises(SinkError) as info:
        await bad.send(make_notification())
    assert not info.value.retriable and info.value.status == 400
    assert "routing_key" in caplog.text and "W" * 32 not in caplog.text
    good = PagerDutySink(PD_KEY, base_url=pagerduty.base_url)
    pagerduty.fail("429", times=1)
    with pytest.raises(SinkError) as info:
        await good.send(make_notification())
    assert info.value.retriable and info.value.status == 429
    pagerduty.fail("500", times=1)
    with pytest.raises(SinkError) as info:
        await good.send(make_notification())
    assert info.value.retriable
    await bad.close()
    await good.close()


async def test_pagerduty_group_trigger_lists_members(pagerduty):
    sink = PagerDutySink(PD_KEY, base_url=pagerduty.base_url)
    await sink.send(make_group(25))
    await sink.close()
    ev = pagerduty.accepted[0]
    assert ev["dedup_key"] == "grp-feedbeef"
    assert len(ev["payload"]["custom_details"]["members"]) == 10
    assert "25 streams" in ev["payload"]["summary"]


async def test_webhook_is_signed(webhook):
    sink = WebhookSink(webhook.url, "s3cr3t-hmac-key", wall_clock=lambda: 1_790_000_000)
    await sink.send(make_notification())
    wrong = WebhookSink(webhook.url, "not-the-key")
    with pytest.raises(SinkError) as info:
        await wrong.send(make_notification())
    await sink.close()
    await wrong.close()
    assert not info.value.retriable and info.value.status == 401
    assert webhook.accepted[0]["incident_id"] == "inc-0123456789abcdef"
    h = webhook.headers[0]
    assert h["X-Pynomaly-Timestamp"] == "1790000000"
    assert verify("s3cr3t-hmac-key", "1790000000", orjson.dumps(
        {"type": "pynomaly.notification", "version": 1, **make_notification().as_dict()}),
        h["X-Pynomaly-Signature"], now=1_790_000_000)


async def test_kafka_sink_turns_producer_failures_into_retriable_errors():
    from sinks.kafka import KafkaSink

    async def broken(key: bytes, value: bytes) -> None:
        raise ConnectionError("bootstrap 10.0.0.1:9092 unreachable")

    with pytest.raises(SinkError) as info:
        await KafkaSink(broken).send(make_notification())
    assert info.value.retriable and "10.0.0.1" not in str(info.value)
