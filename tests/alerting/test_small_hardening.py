"""Issue 13, finding 11: small holes, each reproduced on main.

* an alert record with ``"contributions": [1]`` escaped the sink worker's error handling,
  so it reconnected and replayed the record forever;
* ``webhook.verify`` accepted a signature of any age (a captured request replays forever);
* secrets in the TOML ``[alerting]`` table showed in ``repr(settings)``.
"""

from __future__ import annotations

from types import SimpleNamespace

import orjson
from prometheus_client import CollectorRegistry

from sinks.webhook import sign, verify
from streams.alerting.notify import Notifier
from streams.alerting.notify_worker import SinkWorker
from streams.alerting.routing import Router
from streams.metrics import Metrics
from streams.settings import load_settings
from tests.alerting.scored import T0

SINKS = ("slack", "teams", "pagerduty", "webhook")


class Recorder:
    """Stands in for the Kafka producer: records what the worker publishes."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes | None, bytes]] = []

    async def publish(self, records):
        self.records.extend(records)


async def test_a_hostile_alert_record_is_dead_lettered_not_replayed_forever():
    settings = load_settings(environ={})
    producer = Recorder()
    worker = SinkWorker(settings, "webhook", delivery=None, notifier=Notifier(Router([], [], SINKS)),  # type: ignore[arg-type]
                        metrics=Metrics(CollectorRegistry()), producer=producer)  # type: ignore[arg-type]
    rec = {"type": "incident", "action": "opened", "incident_id": "inc-x", "seq": 1, "stream": "s",
           "detector": "zscore", "severity": "critical", "ts": T0, "opened_at": T0, "score": 0.9999,
           "peak_score": 0.9999, "threshold": 0.999, "count": 1, "contributions": [1]}
    msg = SimpleNamespace(value=orjson.dumps(rec), topic="t.alerts", partition=0, offset=5, key=None)
    await worker.handle(msg)  # raised AttributeError on main: the worker reconnected and replayed
    [(topic, _, value)] = producer.records
    assert topic == settings.topic_deadletter
    assert orjson.loads(value)["reason"] == "bad_alert_record"


def test_webhook_verify_bounds_the_timestamp_age():
    body = b'{"x":1}'
    now = 1_790_000_000
    fresh = str(now - 10)
    assert verify("s3cret", fresh, body, sign("s3cret", fresh, body), now=now)
    old = str(now - 3600)
    assert not verify("s3cret", old, body, sign("s3cret", old, body), now=now)
    future = str(now + 3600)
    assert not verify("s3cret", future, body, sign("s3cret", future, body), now=now)
    assert not verify("s3cret", "not-a-number", body, sign("s3cret", "not-a-number", body), now=now)


def test_secrets_of_the_toml_alerting_table_stay_out_of_repr(tmp_path):
    cfg = tmp_path / "p.toml"
    cfg.write_text('[alerting]\nslack_webhook_url = "https://hooks.slack.com/services/T0/B0/S3CR3T"\n'
                   'webhook_secret = "hook-S3CR3T"\ncontrol_token = "ctl-S3CR3T"\n'
                   'quiet_s = 300\n')
    settings = load_settings(config=cfg, environ={})
    shown = repr(settings) + str(settings)
    assert "S3CR3T" not in shown, shown
    assert settings.extra["alerting"]["quiet_s"] == 300  # the values are still there to read
    assert "S3CR3T" in settings.extra["alerting"]["webhook_secret"]
