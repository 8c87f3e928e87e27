"""Prometheus metrics. Names are constants that dashboards import; the registry is passed in.

Every NAME constant is the name Prometheus exposes (counters end in ``_total``, the build
info in ``_info``). No label ever carries a stream id, except the opt-in score gauge for at
most :data:`MAX_SCORE_STREAMS` streams named in the configuration. Label values come from the
small fixed sets below; a value outside its set is recorded as ``other`` so a bug can never
explode cardinality. docs/metrics.md lists every metric, its labels and their values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

import streams
from detectors.protocol import SEVERITIES
from streams.codec import REASONS
from streams.errors import SettingsError

# --- names (as exposed) --------------------------------------------------------------------
EVENTS_CONSUMED = "pynomaly_events_consumed_total"
EVENTS_SCORED = "pynomaly_events_scored_total"
EVENTS_WARMING_UP = "pynomaly_events_warming_up_total"
EVENTS_DEADLETTERED = "pynomaly_events_deadlettered_total"
EVENTS_FORWARDED = "pynomaly_events_forwarded_total"
EVENTS_REPLAYED = "pynomaly_events_replayed_skipped_total"
OWNERSHIP_VIOLATIONS = "pynomaly_partition_ownership_violations_total"
ANOMALIES = "pynomaly_anomalies_total"
SCORE = "pynomaly_calibrated_score"
BATCH_DURATION = "pynomaly_scoring_batch_duration_seconds"
EVENT_LAG = "pynomaly_event_time_lag_seconds"
CONSUMER_LAG = "pynomaly_consumer_lag_records"
ACTIVE_STREAMS = "pynomaly_active_streams"
DETECTOR_STATE_BYTES = "pynomaly_detector_state_bytes"
REFITS = "pynomaly_detector_refits_total"
REFIT_DURATION = "pynomaly_detector_refit_duration_seconds"
CHECKPOINT_WRITES = "pynomaly_checkpoint_writes_total"
CHECKPOINT_DURATION = "pynomaly_checkpoint_duration_seconds"
CHECKPOINT_RESTORES = "pynomaly_checkpoint_restores_total"
STREAMS_EVICTED = "pynomaly_streams_evicted_total"
OPEN_INCIDENTS = "pynomaly_open_incidents"
INCIDENT_TRANSITIONS = "pynomaly_incident_transitions_total"
NOTIFICATIONS = "pynomaly_notifications_total"
SINK_REQUEST_DURATION = "pynomaly_sink_request_duration_seconds"
ERRORS = "pynomaly_errors_total"
STREAM_SCORE = "pynomaly_stream_score"
BUILD_INFO = "pynomaly_build_info"

# --- bounded label value sets ---------------------------------------------------------------
OTHER = "other"
DEADLETTER_REASONS: tuple[str, ...] = (*REASONS, OTHER)
ANOMALY_SEVERITIES: tuple[str, ...] = tuple(s for s in SEVERITIES if s != "none")
# The sink label is the sink's kind (its default name); sinks configured under other names
# are counted as "other" unless the notify wiring passes the kind.
SINKS: tuple[str, ...] = ("slack", "teams", "pagerduty", "webhook", "kafka")
# The outcomes sinks.delivery.Delivery reports per attempt: delivered (the vendor accepted
# it), retry (a retriable failure or an open circuit: it will be tried again), final (a
# non-retriable failure: the notification is dead-lettered).
OUTCOMES: tuple[str, ...] = ("delivered", "retry", "final")
TRANSITIONS: tuple[str, ...] = ("opened", "updated", "resolved", "silenced")
CHECKPOINT_OUTCOMES: tuple[str, ...] = ("ok", "error", "too_large")
RESTORE_OUTCOMES: tuple[str, ...] = ("ok", "rejected")
COMPONENTS: tuple[str, ...] = ("score", "incidents", "notify", "checkpoint", "web", OTHER)
MAX_SCORE_STREAMS = 20

# --- buckets (seconds unless noted) ---------------------------------------------------------
FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
LAG_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 30, 60, 300, 3600, 86400)
SINK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
SLOW_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300)
# Calibrated scores in [0, 1]; the tail buckets match the severity bands so the dashboard
# can compare the observed tail mass with the mass a calibrated detector should produce.
SCORE_BUCKETS = (0.5, 0.9, 0.99, 0.999, 0.99999, 0.9999999, 1.0)


@dataclasses.dataclass(frozen=True)
class MetricsSettings:
    """``[metrics]`` TOML table / ``PYNOMALY_METRICS_*`` env vars."""

    # Streams whose latest calibrated score is exported as pynomaly_stream_score{stream=...}.
    # The only stream-id label in the project, hence capped at MAX_SCORE_STREAMS.
    score_streams: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.score_streams) > MAX_SCORE_STREAMS:
            raise SettingsError(
                f"invalid setting metrics.score_streams / PYNOMALY_METRICS_SCORE_STREAMS: "
                f"{len(self.score_streams)} streams named, at most {MAX_SCORE_STREAMS} allowed "
                "(each is a time series); name fewer streams"
            )


def load_metrics_settings(
    extra: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> MetricsSettings:
    """Read :class:`MetricsSettings` from ``Settings.extra['metrics']`` and the environment."""
    from streams.settings import load_dataclass

    table = (extra or {}).get("metrics", {})
    return load_dataclass(MetricsSettings, environ, table, prefix="PYNOMALY_METRICS_")


def _bare(name: str) -> str:
    """prometheus_client appends _total / _info itself; it wants the bare name."""
    for suffix in ("_total", "_info"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


class Bounded:
    """A labelled metric whose label values are clamped to fixed sets (unknown -> ``other``)."""

    def __init__(self, metric: Any, allowed: Mapping[str, Sequence[str] | None]) -> None:
        self.metric = metric
        self.allowed = {k: (frozenset(v) if v is not None else None) for k, v in allowed.items()}
        self.names = tuple(allowed)
        # Children for allowed value tuples only, so the cache is as bounded as the labels;
        # it makes labels() a dict lookup on the per-event path (prometheus_client's is ~10x).
        self._children: dict[tuple[str, ...], Any] = {}

    def labels(self, *values: str, **kw: str) -> Any:
        key = values if values else tuple(kw[n] for n in self.names)
        child = self._children.get(key)
        if child is not None:
            return child
        if len(key) != len(self.names):
            raise ValueError(f"{self.metric._name} takes labels {self.names}, got {key!r}")
        clamped = {}
        cacheable = True
        for name, raw in zip(self.names, key, strict=True):
            value = str(raw)
            ok = self.allowed[name]
            if ok is None:
                cacheable = False
            elif value not in ok:
                value, cacheable = OTHER, False
            clamped[name] = value
        child = self.metric.labels(**clamped)
        if cacheable:
            self._children[key] = child
        return child

    def clear(self) -> None:
        self._children.clear()
        self.metric.clear()

    def prime(self, combos: Iterable[Mapping[str, str]]) -> None:
        """Create series at zero so rate() and dashboards see them before the first event."""
        for combo in combos:
            self.metric.labels(**combo)


class Metrics:
    """All the worker's metrics, registered on the registry it is given."""

    def __init__(
        self,
        registry: CollectorRegistry,
        score_streams: Sequence[str] = (),
        detectors: Sequence[str] = (),
    ) -> None:
        self.registry = registry
        if len(score_streams) > MAX_SCORE_STREAMS:
            MetricsSettings(tuple(score_streams))  # raises the explanatory SettingsError
        self.score_streams = frozenset(score_streams)
        detector_names = tuple(detectors) or _registered_detectors()
        r = registry

        # -- scoring ------------------------------------------------------------------------
        self.events_consumed = Counter(
            _bare(EVENTS_CONSUMED), "Input records consumed from the events topic", registry=r
        )
        self.events_scored = Counter(
            _bare(EVENTS_SCORED), "Events scored (one scored record each)", registry=r
        )
        self.events_warming_up = Counter(
            _bare(EVENTS_WARMING_UP),
            "Events scored while their stream's detector was still warming up",
            registry=r,
        )
        self.events_deadlettered = Bounded(
            Counter(
                _bare(EVENTS_DEADLETTERED),
                "Invalid input sent to the dead-letter topic, by reason",
                ["reason"],
                registry=r,
            ),
            {"reason": DEADLETTER_REASONS},
        )
        self.events_replayed = Counter(
            _bare(EVENTS_REPLAYED),
            "Replayed events skipped because a restored checkpoint already covered them",
            registry=r,
        )
        self.ownership_violations = Counter(
            _bare(OWNERSHIP_VIOLATIONS),
            "Events of a stream learned from another partition of the events topic (another "
            "partitioner, explicit partitions, partitions added): scored, never skipped",
            registry=r,
        )
        self.events_forwarded = Counter(
            _bare(EVENTS_FORWARDED),
            "Events re-keyed to the partition that owns their stream",
            registry=r,
        )
        self.anomalies = Bounded(
            Counter(_bare(ANOMALIES), "Anomalous events, by severity", ["severity"], registry=r),
            {"severity": ANOMALY_SEVERITIES},
        )
        self.score = Histogram(
            SCORE,
            "Calibrated scores in [0, 1] of events past warm-up (calibration check)",
            buckets=SCORE_BUCKETS,
            registry=r,
        )
        self.batch_duration = Histogram(
            BATCH_DURATION,
            "Time to score one batch and hand its outputs to the producer",
            buckets=FAST_BUCKETS,
            registry=r,
        )
        self.event_lag = Histogram(
            EVENT_LAG, "Wall-clock now minus event time, at scoring", buckets=LAG_BUCKETS,
            registry=r,
        )
        self.consumer_lag = Bounded(
            Gauge(
                CONSUMER_LAG,
                "Records between the committed position and the high watermark, per partition",
                ["topic", "partition"],
                registry=r,
            ),
            {"topic": None, "partition": None},  # bounded by the assignment; see set_consumer_lag
        )
        self.active_streams = Gauge(
            ACTIVE_STREAMS, "Streams with a detector in this worker's memory", registry=r
        )
        # -- detectors ----------------------------------------------------------------------
        self.detector_state_bytes = Gauge(
            DETECTOR_STATE_BYTES,
            "Estimated memory held by detector state in this worker, bytes",
            registry=r,
        )
        self.refits = Bounded(
            Counter(_bare(REFITS), "Detector refits, by detector", ["detector"], registry=r),
            {"detector": (*detector_names, OTHER)},
        )
        self.refit_duration = Bounded(
            Histogram(
                REFIT_DURATION, "Time one detector refit took", ["detector"],
                buckets=SLOW_BUCKETS, registry=r,
            ),
            {"detector": (*detector_names, OTHER)},
        )
        self.checkpoint_writes = Bounded(
            Counter(
                _bare(CHECKPOINT_WRITES), "Detector state checkpoints written, by outcome",
                ["outcome"], registry=r,
            ),
            {"outcome": CHECKPOINT_OUTCOMES},
        )
        self.checkpoint_restores = Bounded(
            Counter(
                _bare(CHECKPOINT_RESTORES),
                "Stream states read back from checkpoints, by outcome (rejected: bad HMAC)",
                ["outcome"], registry=r,
            ),
            {"outcome": RESTORE_OUTCOMES},
        )
        self.streams_evicted = Counter(
            _bare(STREAMS_EVICTED),
            "Idle streams evicted from memory (to the checkpoint topic) by max_streams_in_memory",
            registry=r,
        )
        self.checkpoint_duration = Histogram(
            CHECKPOINT_DURATION, "Time to serialize, sign and produce one checkpoint",
            buckets=SLOW_BUCKETS, registry=r,
        )
        self.stream_score = Gauge(
            STREAM_SCORE,
            f"Latest calibrated score of opted-in streams (at most {MAX_SCORE_STREAMS})",
            ["stream"],
            registry=r,
        )
        # -- incidents and notifications ----------------------------------------------------
        self.open_incidents = Bounded(
            Gauge(OPEN_INCIDENTS, "Incidents currently open, by severity", ["severity"],
                  registry=r),
            {"severity": ANOMALY_SEVERITIES},
        )
        self.incident_transitions = Bounded(
            Counter(
                _bare(INCIDENT_TRANSITIONS), "Incident transitions, by kind", ["transition"],
                registry=r,
            ),
            {"transition": TRANSITIONS},
        )
        self.notifications = Bounded(
            Counter(
                _bare(NOTIFICATIONS), "Notification attempts, by sink kind and outcome",
                ["sink", "outcome"], registry=r,
            ),
            {"sink": (*SINKS, OTHER), "outcome": OUTCOMES},
        )
        self.sink_request_duration = Bounded(
            Histogram(
                SINK_REQUEST_DURATION, "Duration of one HTTP request to a sink", ["sink"],
                buckets=SINK_BUCKETS, registry=r,
            ),
            {"sink": (*SINKS, OTHER)},
        )
        self.errors = Bounded(
            Counter(
                _bare(ERRORS), "Unexpected errors caught and survived, by component",
                ["component"], registry=r,
            ),
            {"component": COMPONENTS},
        )
        self.build = Info(_bare(BUILD_INFO), "Build information", registry=r)
        self.build.info({"version": streams.__version__})
        self._prime(detector_names)

    def _prime(self, detector_names: Sequence[str]) -> None:
        self.events_deadlettered.prime({"reason": x} for x in DEADLETTER_REASONS)
        self.anomalies.prime({"severity": s} for s in ANOMALY_SEVERITIES)
        self.open_incidents.prime({"severity": s} for s in ANOMALY_SEVERITIES)
        self.incident_transitions.prime({"transition": t} for t in TRANSITIONS)
        self.notifications.prime({"sink": s, "outcome": o} for s in SINKS for o in OUTCOMES)
        self.sink_request_duration.prime({"sink": s} for s in SINKS)
        self.refits.prime({"detector": d} for d in detector_names)
        self.refit_duration.prime({"detector": d} for d in detector_names)
        self.checkpoint_writes.prime({"outcome": o} for o in CHECKPOINT_OUTCOMES)
        self.checkpoint_restores.prime({"outcome": o} for o in RESTORE_OUTCOMES)
        self.errors.prime({"component": c} for c in COMPONENTS)

    def note_notification(self, sink: str, outcome: str) -> None:
        """The ``on_attempt`` hook of :class:`sinks.delivery.Delivery`."""
        self.notifications.labels(sink=sink, outcome=outcome).inc()

    def observe_stream_score(self, stream: str, score: float) -> None:
        """Export ``score`` for ``stream`` only if the configuration opted it in."""
        if stream in self.score_streams:
            self.stream_score.labels(stream=stream).set(score)

    def set_consumer_lag(self, lags: Mapping[tuple[str, int], int]) -> None:
        """Replace all lag series with ``{(topic, partition): lag}`` for the current assignment.

        Clearing first drops partitions revoked in a rebalance, so the series count stays
        bounded by the partitions this worker owns.
        """
        self.consumer_lag.clear()
        for (topic, partition), lag in lags.items():
            self.consumer_lag.labels(topic=topic, partition=str(partition)).set(max(0, lag))

    def exposed_names(self) -> set[str]:
        """Every series name this instance can expose, even before a labelled series exists."""
        suffixes = {
            "counter": ("_total", "_created"),
            "histogram": ("_bucket", "_sum", "_count", "_created"),
            "info": ("_info",),
        }
        out: set[str] = set()
        for fam in self.registry.collect():
            out.update(fam.name + s for s in suffixes.get(fam.type, ("",)))
        return out


def _registered_detectors() -> tuple[str, ...]:
    from detectors.registry import names

    return tuple(names())
