"""Metric names, bounded labels and the opt-in score gauge."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import streams.metrics as M
from streams.errors import SettingsError
from streams.metrics import Metrics, load_metrics_settings

NAMES = {k: v for k, v in vars(M).items() if k.isupper() and isinstance(v, str) and v.startswith("pynomaly_")}


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def test_every_name_constant_is_exposed_with_conventions() -> None:
    m = Metrics(CollectorRegistry())
    exposed = m.exposed_names()
    assert len(NAMES) >= 20
    for const, name in NAMES.items():
        assert name.startswith("pynomaly_"), const
        assert name in exposed or f"{name}_bucket" in exposed, f"{const}={name} not registered"
    fams = {f.name: f.type for f in m.registry.collect()}
    for fam, typ in fams.items():
        if typ == "counter":
            assert f"{fam}_total" in NAMES.values(), f"counter {fam} must be named ..._total"
        if "duration" in fam or "lag_seconds" in fam:
            assert fam.endswith("_seconds"), fam


def test_registries_are_independent() -> None:
    a, b = Metrics(CollectorRegistry()), Metrics(CollectorRegistry())
    a.events_scored.inc(3)
    assert _samples(a.registry)[("pynomaly_events_scored_total", ())] == 3
    assert _samples(b.registry)[("pynomaly_events_scored_total", ())] == 0


def test_unknown_label_values_collapse_to_other() -> None:
    m = Metrics(CollectorRegistry())
    m.events_deadlettered.labels(reason="not_json").inc()
    m.events_deadlettered.labels("made-up reason from a bug").inc(2)
    m.note_notification("slack", "delivered")
    m.notifications.labels(sink="my-webhook-named-by-user", outcome="delivered").inc()
    s = _samples(m.registry)
    assert s[("pynomaly_events_deadlettered_total", (("reason", "not_json"),))] == 1
    assert s[("pynomaly_events_deadlettered_total", (("reason", "other"),))] == 2
    assert s[("pynomaly_notifications_total", (("outcome", "delivered"), ("sink", "other")))] == 1
    assert s[("pynomaly_notifications_total", (("outcome", "delivered"), ("sink", "slack")))] == 1
    assert not any("made-up" in str(k) or "my-webhook" in str(k) for k in s)


def test_label_cache_stays_bounded_and_is_shared_by_call_styles() -> None:
    m = Metrics(CollectorRegistry())
    for i in range(1000):
        m.events_deadlettered.labels(reason=f"bug-{i}").inc()
    assert m.events_deadlettered.labels("bad_ts") is m.events_deadlettered.labels(reason="bad_ts")
    assert len(m.events_deadlettered._children) <= len(M.DEADLETTER_REASONS)
    s = _samples(m.registry)
    assert s[("pynomaly_events_deadlettered_total", (("reason", "other"),))] == 1000
    with pytest.raises(ValueError, match="takes labels"):
        m.notifications.labels("slack")


def test_series_are_primed_at_zero() -> None:
    s = _samples(Metrics(CollectorRegistry()).registry)
    assert s[("pynomaly_anomalies_total", (("severity", "critical"),))] == 0
    assert s[("pynomaly_notifications_total", (("outcome", "final"), ("sink", "pagerduty")))] == 0
    assert s[("pynomaly_build_info", (("version", M.streams.__version__),))] == 1
    assert not any(k[0] == "pynomaly_anomalies_total" and ("severity", "none") in k[1] for k in s)


def test_stream_score_only_for_opted_in_streams() -> None:
    m = Metrics(CollectorRegistry(), score_streams=["checkout-latency"])
    m.observe_stream_score("checkout-latency", 0.42)
    m.observe_stream_score("some-other-stream", 0.99)
    s = _samples(m.registry)
    assert s[("pynomaly_stream_score", (("stream", "checkout-latency"),))] == 0.42
    assert not any(("stream", "some-other-stream") in k[1] for k in s)


def test_score_stream_cap() -> None:
    with pytest.raises(SettingsError, match="at most 20"):
        Metrics(CollectorRegistry(), score_streams=[f"s{i}" for i in range(21)])
    env = {"PYNOMALY_METRICS_SCORE_STREAMS": "a, b"}
    assert load_metrics_settings({}, env).score_streams == ("a", "b")
    assert load_metrics_settings({"metrics": {"score_streams": ["x"]}}, {}).score_streams == ("x",)
    with pytest.raises(SettingsError, match="PYNOMALY_METRICS_SCORE_STREAMS"):
        load_metrics_settings({}, {"PYNOMALY_METRICS_SCORE_STREAMS": ",".join("x" * 30)})


def test_consumer_lag_drops_revoked_partitions() -> None:
    m = Metrics(CollectorRegistry())
    m.set_consumer_lag({("ev", 0): 5, ("ev", 1): 7})
    m.set_consumer_lag({("ev", 1): 2, ("ev", 2): -3})
    lag = {k: v for k, v in _samples(m.registry).items() if k[0] == "pynomaly_consumer_lag_records"}
    assert lag == {
        ("pynomaly_consumer_lag_records", (("partition", "1"), ("topic", "ev"))): 2,
        ("pynomaly_consumer_lag_records", (("partition", "2"), ("topic", "ev"))): 0,
    }


def test_docs_list_every_metric_and_label_value() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "metrics.md").read_text()
    for const, name in NAMES.items():
        assert f"`{name}`" in doc, f"docs/metrics.md does not list {const} = {name}"
    for values in (M.DEADLETTER_REASONS, M.ANOMALY_SEVERITIES, M.SINKS, M.OUTCOMES,
                   M.TRANSITIONS, M.COMPONENTS, M.CHECKPOINT_OUTCOMES, M.RESTORE_OUTCOMES):
        for v in values:
            assert f"`{v}`" in doc, f"docs/metrics.md does not list label value {v!r}"
