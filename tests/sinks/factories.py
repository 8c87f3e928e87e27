"""Sample notifications shared by sink and alerting tests."""

from __future__ import annotations

import dataclasses

from sinks.notification import GroupMember, Notification

T0 = 1_790_000_000.0


def make_notification(**changes) -> Notification:
    n = Notification(
        kind="trigger", incident_id="inc-0123456789abcdef", stream="payments.latency",
        detector="zscore", severity="critical", ts=T0 + 30, opened_at=T0, score=0.9993,
        peak_score=0.9999, threshold=0.999, count=4, value=812.5, expected=(95.0, 140.0),
        contributions=(("value", 1.0),), tags={"service": "payments"},
        dashboard_url="https://grafana.example.com/d/pynomaly-detectors?var-stream=payments.latency",
    )
    return dataclasses.replace(n, **changes)


def make_group(n_members: int = 40, **changes) -> Notification:
    members = tuple(
        GroupMember(f"grp-{i:04x}", f"svc{i}.errors", "error", 0.999 - i * 1e-5, T0 + i)
        for i in range(n_members)
    )
    base = make_notification(kind="group_trigger", incident_id="grp-feedbeef", stream="*",
                             members=members[:10], member_count=n_members, severity="error")
    return dataclasses.replace(base, **changes)
