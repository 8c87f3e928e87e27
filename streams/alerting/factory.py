"""Build the configured sinks, each wrapped in its delivery policy."""

from __future__ import annotations

from collections.abc import Callable

from sinks.delivery import Delivery
from sinks.kafka import KafkaSink, Produce
from sinks.pagerduty import PagerDutySink
from sinks.protocol import Sink
from sinks.slack import SlackSink
from sinks.teams import TeamsSink
from sinks.webhook import WebhookSink
from streams.alerting.settings import AlertingSettings


def build_sinks(s: AlertingSettings, produce: Produce | None = None) -> dict[str, Sink]:
    """One sink per configured destination (a sink is enabled when its URL/key is set).

    ``produce(key, value)`` publishes to ``notify_topic``; without it the kafka sink is off.
    """
    sinks: dict[str, Sink] = {}
    if s.slack_webhook_url:
        sinks["slack"] = SlackSink(s.slack_webhook_url, timeout_s=s.http_timeout_s, top_n=s.group_top_n)
    if s.teams_webhook_url:
        sinks["teams"] = TeamsSink(s.teams_webhook_url, timeout_s=s.http_timeout_s, top_n=s.group_top_n)
    if s.pagerduty_routing_key:
        sinks["pagerduty"] = PagerDutySink(s.pagerduty_routing_key, s.pagerduty_url,
                                           timeout_s=s.http_timeout_s)
    if s.webhook_url:
        sinks["webhook"] = WebhookSink(s.webhook_url, s.webhook_secret, timeout_s=s.http_timeout_s)
    if s.notify_topic and produce is not None:
        sinks["kafka"] = KafkaSink(produce)
    return sinks


def build_deliveries(s: AlertingSettings, on_attempt: Callable[[str, str], None] | None = None,
                     on_request: Callable[[str, float], None] | None = None,
                     produce: Produce | None = None) -> dict[str, Delivery]:
    """Each sink wrapped in its policy; the hooks feed metrics (sink, outcome / seconds)."""
    return {name: Delivery(sink, s.policy(name), on_attempt=on_attempt, on_request=on_request)
            for name, sink in build_sinks(s, produce).items()}
