"""Alerting: scored records -> incidents (open/update/resolve) -> routed notifications.

Everything here is pure and deterministic: event time drives incidents, and the only
clock is the one passed in. The Faust wiring lives in :mod:`streams.alerting.agents`.
"""
