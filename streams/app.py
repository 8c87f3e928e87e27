"""The Faust app, built from Settings by ``create_app``; no module-level app object."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import faust
from prometheus_client import CollectorRegistry

from streams.agents import register_scoring
from streams.alerting.agents import register_alerting
from streams.alerting.settings import AlertingSettings
from streams.checkpoints import CheckpointStore, state_key
from streams.eviction import StreamEvictor
from streams.explore import StreamReader
from streams.explore_api import ExploreAPI, register_explore_views
from streams.kafka_auth import faust_credentials
from streams.metrics import Metrics, load_metrics_settings
from streams.scoring import StreamScorer, default_pipeline_factory
from streams.settings import Settings
from streams.web import register_worker_views

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Runtime:
    """What the agents and views of one app share; reachable as ``app.runtime``."""

    settings: Settings
    registry: CollectorRegistry
    metrics: Metrics
    scorer: StreamScorer
    checkpoints: CheckpointStore | None = None
    evictor: StreamEvictor | None = None


def faust_settings(settings: Settings) -> dict[str, Any]:
    """Translate our settings into Faust's. Production defaults target Apache Kafka 3.x/4.x."""
    conf: dict[str, Any] = {
        "broker": [f"kafka://{hp.strip()}" for hp in settings.kafka_bootstrap.split(",")],
        "broker_credentials": faust_credentials(settings),
        "store": "memory://",
        "autodiscover": False,
        "datadir": settings.data_dir,
        "processing_guarantee": "at_least_once",
        "topic_partitions": settings.topic_partitions,
        "topic_replication_factor": settings.topic_replication,
        "broker_session_timeout": settings.session_timeout_s,
        "broker_heartbeat_interval": settings.heartbeat_interval_s,
        "broker_commit_interval": settings.commit_interval_s,
        "producer_linger": settings.producer_linger_ms / 1000.0,
        "producer_max_request_size": settings.producer_max_request_bytes,
        "consumer_auto_offset_reset": "earliest",
        "web_port": settings.web_port,
        "web_bind": settings.web_host,
        "web_host": settings.web_host,
        "web_in_thread": False,
        "stream_buffer_maxsize": max(4096, settings.batch_max_events * 2),
        "key_serializer": "raw",
        "value_serializer": "raw",
        # Faust waits 1200 s for a produce answer; a lost answer (seen on the dev broker
        # for a topic created after start) would stall the drain that long. 30 s, then
        # the batch fails and is retried from its uncommitted offsets.
        "producer_request_timeout": 30.0,
    }
    if settings.dev_broker:
        # Tansu: joins take half the session timeout; keep rebalances short.
        conf["broker_rebalance_timeout"] = max(settings.session_timeout_s * 2, 6.0)
        conf["broker_request_timeout"] = 30.0
    return conf


def create_app(
    settings: Settings,
    registry: CollectorRegistry | None = None,
    alerting: AlertingSettings | None = None,
) -> faust.App:
    """The worker's app: scoring, checkpoints, web views and (when configured) alerting."""
    registry = registry if registry is not None else CollectorRegistry()
    app = faust.App(settings.app_id, **faust_settings(settings))
    # Windowed detectors refit here, off the event loop.
    refit_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="pynomaly-refit")
    metrics = Metrics(registry, score_streams=load_metrics_settings(settings.extra).score_streams)
    runtime = Runtime(
        settings=settings,
        registry=registry,
        metrics=metrics,
        scorer=StreamScorer(default_pipeline_factory(settings, refit_pool)),
    )
    key = state_key(settings)
    if key is None:
        log.warning("PYNOMALY_STATE_HMAC_KEY is not set: detector state is not checkpointed and "
                    "restarts re-warm every stream; set it to a long random secret")
    else:
        runtime.checkpoints = CheckpointStore(settings, runtime.scorer, metrics, key, executor=refit_pool)
        connect_checkpoints(app, settings, runtime.checkpoints)
    if settings.max_streams_in_memory:
        runtime.evictor = StreamEvictor(
            runtime.scorer, runtime.checkpoints, settings.max_streams_in_memory,
            evictions=metrics.streams_evicted,
            restores=metrics.checkpoint_restores.labels("ok"),
            rejected=metrics.checkpoint_restores.labels("rejected"))
        if runtime.checkpoints is not None:
            runtime.checkpoints.evictor = runtime.evictor
        else:
            log.warning("no checkpoints: streams beyond max_streams_in_memory (%d) are dropped "
                        "and re-warm on their next event", settings.max_streams_in_memory)
    app.runtime = runtime  # type: ignore[attr-defined]
    register_scoring(app, runtime)
    if runtime.evictor is not None:
        cap_streams(app, runtime, runtime.evictor)
    register_worker_views(app, metrics)
    token = str(alerting.control_token) if alerting is not None else ""
    register_explore_views(app, ExploreAPI(settings, StreamReader(settings), token, settings.web_host))
    if alerting is not None:
        register_alerting(app, settings, alerting, metrics)
    return app


def connect_checkpoints(app: faust.App, settings: Settings, store: CheckpointStore) -> None:
    """State follows partitions: write it on revoke, drop what moved away, flush on shutdown."""
    owned: set[int] = set()

    def events_partitions(tps: Any) -> set[int]:
        return {tp.partition for tp in tps if tp.topic == settings.topic_events}

    async def on_revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
        await store.checkpoint(events_partitions(revoked))

    async def on_assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
        now = events_partitions(assigned)
        store.tick(timer=True)  # pauses are watched from the first assignment on
        if store.paused:  # resumed after a pause: a successor may have written newer state
            await store.reassigned(owned | now)
        moved = owned - now
        if moved:
            await store.on_revoked(moved)
        owned.clear()
        owned.update(now)
        store.prefetch(now)

    async def on_shutdown(sender: Any, **kwargs: Any) -> None:
        await store.stop()

    @app.timer(min(1.0, settings.session_timeout_s / 3))
    async def notice_pauses() -> None:
        store.tick(timer=True)

    # mode types receivers without the coroutine return; they are awaited (maybe_async).
    app.on_partitions_revoked.connect(on_revoked)  # type: ignore[arg-type]
    app.on_partitions_assigned.connect(on_assigned)  # type: ignore[arg-type]
    app.on_before_shutdown.connect(on_shutdown)  # type: ignore[arg-type]


BatchHandler = Callable[[Sequence[Any]], Awaitable[None]]


def cap_streams(app: faust.App, runtime: Runtime, evictor: StreamEvictor) -> None:
    """Wrap the scoring batch handler: evicted streams come back before their batch is
    scored; once its outputs are acknowledged, the least recently used beyond the cap go.

    Record keys name the scored streams (a mismatched key is forwarded and scored later
    under its stream's key), so the batch's keys are what to restore and touch.
    """
    handlers: dict[str, BatchHandler] = app._pynomaly_batch_handlers  # type: ignore[attr-defined]
    topic = runtime.settings.topic_events
    process = handlers[topic]
    store = runtime.checkpoints
    active = runtime.metrics.active_streams
    scorer = runtime.scorer

    async def process_capped(messages: Sequence[Any]) -> None:
        if store is not None:
            # A partition's assignment restore must index its evicted streams first.
            await store.ensure_restored({msg.partition for msg in messages})
        await evictor.restore_for(msg.key for msg in messages)
        # Returns once the batch's outputs are acknowledged; a failure marks the store failed.
        await process(messages)
        evictor.touch(msg.key for msg in messages)
        if store is not None:
            async with store.batch_lock:  # no checkpoint snapshot of a half-evicted stream
                await evictor.enforce()
        else:
            await evictor.enforce()
        active.set(len(scorer.pipelines))

    handlers[topic] = process_capped
