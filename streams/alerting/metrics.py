"""Alerting metrics. Labels come from fixed sets: sink names, outcomes, record actions."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

ALERT_RECORDS = "pynomaly_alert_records_total"  # labels: type (incident|group), action
NOTIFICATIONS = "pynomaly_notifications_total"  # labels: sink, outcome (delivered|retry|final|gave_up)
NOTIFY_DURATION = "pynomaly_notification_delivery_seconds"  # labels: sink
OPEN_INCIDENTS = "pynomaly_open_incidents"
ALERTING_DEADLETTERED = "pynomaly_alerting_deadlettered_total"  # labels: reason


def _bare(name: str) -> str:
    return name[: -len("_total")] if name.endswith("_total") else name


class AlertingMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.alert_records = Counter(_bare(ALERT_RECORDS), "Alert records written, by type and action",
                                     ["type", "action"], registry=registry)
        self.notifications = Counter(_bare(NOTIFICATIONS), "Notification attempts, by sink and outcome",
                                     ["sink", "outcome"], registry=registry)
        self.delivery = Histogram(NOTIFY_DURATION, "Time from first attempt to accept or give-up",
                                  ["sink"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
                                  registry=registry)
        self.open_incidents = Gauge(OPEN_INCIDENTS, "Incidents open in this worker", registry=registry)
        self.deadlettered = Counter(_bare(ALERTING_DEADLETTERED),
                                    "Records the alerting agents could not use or deliver, by reason",
                                    ["reason"], registry=registry)

    def attempt(self, sink: str, outcome: str) -> None:
        self.notifications.labels(sink=sink, outcome=outcome).inc()
