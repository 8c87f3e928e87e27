"""Faust wiring: the incident agent, the idle sweep, and one delivery loop per enabled sink.

* ``incidents`` consumes ``pynomaly.scores`` (every scored record: anomalies open and
  update incidents, calm records prove them over) and ``pynomaly.feedback``; it writes
  every transition to ``pynomaly.alerts`` keyed by stream, and waits for the broker's
  acknowledgement before its input offsets become committable.
* The idle sweep resolves the incidents of a scores partition that received nothing for
  ``idle_resolve_s`` of wall-clock time (its event time cannot advance any more).
* ``notify-<sink>`` (:mod:`streams.alerting.notify_worker`, one per sink, each its own
  consumer group) consumes ``pynomaly.alerts`` and commits a record only after the sink
  accepted it or the notification went to the dead-letter topic (at-least-once). A slow
  sink holds back only itself: neither scoring nor the other sinks wait for it.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import faust
import orjson
from prometheus_client import CollectorRegistry

from streams.agents import install_batch_drain
from streams.alerting.control import register_control_views
from streams.alerting.engine import AlertEngine
from streams.alerting.factory import build_deliveries
from streams.alerting.feedback import Strictness, parse_feedback
from streams.alerting.feedback_cli import find_incident
from streams.alerting.grouping import Grouper
from streams.alerting.notify import Notifier, explore_base
from streams.alerting.notify_worker import SinkWorker, deadletter
from streams.alerting.records import InvalidRecord, parse_scored
from streams.alerting.settings import AlertingSettings
from streams.alerting.state import AlertStateStore
from streams.errors import PynomalyError
from streams.metrics import ANOMALY_SEVERITIES, Metrics
from streams.settings import Settings

log = logging.getLogger(__name__)


def build_engine(a: AlertingSettings) -> AlertEngine:
    return AlertEngine(a.timings(), Grouper(a.group_window_s, a.group_max_individual, a.group_top_n),
                       a.silence_set(), a.false_positive_suppress_s,
                       Strictness(a.false_positive_strict_s, a.false_positive_strict_factor,
                                  a.false_positive_strict_max_steps))


def build_notifier(a: AlertingSettings, settings: Settings | None = None) -> Notifier:
    explore = explore_base(a.explore_url, settings.web_host, settings.web_port) if settings else a.explore_url
    return Notifier(a.router(), str(a.dashboard_url), a.dashboard_uid, a.notify_update_interval_s,
                    a.group_top_n, explore)


def register_alerting(app: faust.App, settings: Settings, alerting_settings: AlertingSettings,
                      metrics_registry: CollectorRegistry | Metrics) -> None:
    """Add the incident, feedback and notify agents to ``app`` (idempotent).

    ``metrics_registry`` is the app's :class:`streams.metrics.Metrics` (preferred: the
    alerting series are defined there) or a bare registry to define them on.
    """
    if getattr(app, "_pynomaly_alerting", False):
        return
    app._pynomaly_alerting = True  # type: ignore[attr-defined]
    a = alerting_settings
    metrics = metrics_registry if isinstance(metrics_registry, Metrics) else Metrics(metrics_registry)
    engine = build_engine(a)
    store = AlertStateStore(settings, engine)

    def raw_topic(name: str) -> faust.TopicT:
        return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw",
                         value_serializer="raw")

    scores, feedback = raw_topic(settings.topic_scores), raw_topic(settings.topic_feedback)

    async def publish(records: list[tuple[str, bytes | None, bytes]]) -> None:
        """Send (topic, key, value) records and wait for every broker acknowledgement."""
        if records:
            await store.start()
            await store.producer.publish(records)

    async def publish_one(topic: str, key: bytes | None, value: bytes) -> None:
        await publish([(topic, key, value)])

    async def lookup(incident_id: str) -> tuple[str, str] | None:
        return await find_incident(settings, incident_id, timeout_s=10.0)

    register_control_views(app, settings, a, engine, publish_one, lookup)

    def out_records(recs: list[dict[str, Any]]) -> list[tuple[str, bytes | None, bytes]]:
        for r in recs:
            if r["type"] == "incident" and r["action"] in ("opened", "updated", "resolved"):
                silenced = r["action"] == "opened" and r.get("suppressed")
                metrics.incident_transitions.labels(transition="silenced" if silenced else r["action"]).inc()
        if recs:
            by_sev = collections.Counter(i.severity for i in engine.open_incidents())
            for sev in ANOMALY_SEVERITIES:
                metrics.open_incidents.labels(severity=sev).set(by_sev.get(sev, 0))
        # keyed by stream: one incident's transitions stay in order on one partition
        return [(settings.topic_alerts, str(r.get("stream") or r.get("group_id")).encode(), orjson.dumps(r))
                for r in recs]

    # Incident state changes and their alert records in one order: the scores batches, the
    # feedback agent and the idle sweep take turns.
    turn = asyncio.Lock()
    last_seen: dict[int, float] = {}  # scores partition -> wall-clock time of its last record

    async def handle_scored(messages: Sequence[Any]) -> None:
        """One batch of scored records -> incident transitions, published before the batch
        is acked; called from the consumer's batch drain (no per-message Faust overhead)."""
        partitions = {msg.partition for msg in messages}
        now = time.monotonic()
        for p in partitions:
            last_seen[p] = now
        await store.ensure_restored(partitions)
        async with turn:
            await _handle_scored(messages)

    async def _handle_scored(messages: Sequence[Any]) -> None:
        out: list[tuple[str, bytes | None, bytes]] = []
        for msg in messages:
            try:
                obs = parse_scored(orjson.loads(msg.value or b"null"))
                if store.replayed(obs.stream, msg.partition, msg.offset):
                    continue  # already in the restored state: applying it twice would double count
                recs = engine.observe(obs, msg.partition)
                if obs.is_anomaly or recs:
                    store.touch(obs.stream, msg.offset)
                for r in recs:
                    if r["type"] == "incident" and r["stream"] != obs.stream:
                        store.dirty.add(r["stream"])  # resolved by the watermark
            except (orjson.JSONDecodeError, InvalidRecord) as exc:
                reason = getattr(exc, "reason", "not_json")
                metrics.errors.labels(component="incidents").inc()
                out.append((settings.topic_deadletter, msg.key,
                            deadletter(reason, str(exc)[:300], msg.value, msg)))
                continue
            except Exception as exc:  # a bug must not stop alerting for every other stream
                log.exception("alerting: could not process a scored record")
                metrics.errors.labels(component="incidents").inc()
                out.append((settings.topic_deadletter, msg.key, deadletter(
                    "alerting_error", f"{type(exc).__name__} while processing", msg.value, msg)))
                continue
            out += out_records(recs)
        await publish(out)  # returns after the broker acknowledged: then offsets may commit
        await store.flush()  # state covering this batch, after its alert records

    install_batch_drain(app, settings.topic_scores, handle_scored, 1000)

    @app.agent(scores, name="incidents")
    async def incidents(stream: faust.StreamT[bytes]) -> None:
        # Subscribes the topic; the batch drain delivers its messages to handle_scored.
        # Any delivered the ordinary way are handled just the same.
        batches = cast(faust.Stream[bytes], stream).take_events
        async for batch in batches(1000, 0.05):
            await handle_scored([ev.message for ev in batch])

    @app.agent(feedback, name="feedback")
    async def on_feedback(stream: faust.StreamT[bytes]) -> None:
        async for ev in cast(faust.Stream[bytes], stream).events():
            msg = ev.message
            await store.ensure_restored({msg.partition})
            try:
                recs = engine.feedback(parse_feedback(orjson.loads(msg.value or b"null"), now=time.time(),
                                                      max_silence_s=a.control_max_silence_s))
            except (orjson.JSONDecodeError, InvalidRecord, PynomalyError) as exc:
                # PynomalyError: a silence feedback with bad fields (SettingsError)
                reason = getattr(exc, "reason", "not_json" if isinstance(exc, ValueError) else "bad_field")
                metrics.errors.labels(component="incidents").inc()
                await publish([(settings.topic_deadletter, msg.key,
                                 deadletter(reason, str(exc)[:300], msg.value, msg))])
                continue
            async with turn:
                await publish(out_records(recs))
                store.dirty.update(r["stream"] for r in recs if r.get("stream") in store.owner)
                await store.flush()

    idle_s = a.idle_resolve_s or a.quiet_s

    @app.timer(1.0)
    async def idle_sweep() -> None:
        now = time.monotonic()
        for p in sorted(p for p, seen in last_seen.items() if now - seen >= idle_s):
            async with turn:
                recs = engine.idle(p)
                if not recs:
                    continue
                log.info("alerting: scores partition %d idle for %.0f s: %d alert records", p,
                         now - last_seen[p], len(recs))
                await publish(out_records(recs))
                store.dirty.update(r["stream"] for r in recs if r.get("stream") in store.owner)
                await store.flush()

    produce = None
    if a.notify_topic:
        store.extra_topics.append(a.notify_topic)  # created with the state topic, at start

        async def produce(key: bytes, value: bytes) -> None:
            await publish([(a.notify_topic, key, value)])

    deliveries = build_deliveries(a, on_attempt=metrics.note_notification,
                                  on_request=lambda sink, secs: metrics.sink_request_duration.labels(
                                      sink=sink).observe(secs), produce=produce)
    workers = [SinkWorker(settings, name, delivery, build_notifier(a, settings), metrics, store.producer,
                          a.new_sink_lookback_s)
               for name, delivery in deliveries.items()]
    running: list[asyncio.Task[None]] = []

    def delivery_task(worker: SinkWorker) -> Callable[[], Awaitable[None]]:
        async def deliver() -> None:  # no argument: Faust would pass the app
            running.append(cast("asyncio.Task[None]", asyncio.current_task()))
            await worker.run()
        deliver.__name__ = f"notify_{worker.name}"
        return deliver

    for worker in workers:
        app.task(delivery_task(worker))
    log.info("alerting: incident agent on %s; notify agents for %s", settings.topic_scores,
             ", ".join(deliveries) or "no sinks (none configured)")

    owned: set[int] = set()
    restoring: set[asyncio.Future[None]] = set()

    async def restore_assigned(partitions: set[int]) -> None:
        """Restore newly assigned partitions and start their idle clocks, so the incidents a
        crash left open resolve even when their streams never send again."""
        try:
            await store.ensure_restored(partitions)
        except Exception as exc:  # the next scored record of the partition tries again
            log.warning("alerting: restoring partitions %s failed (%s)", sorted(partitions),
                        type(exc).__name__)
            return
        started = time.monotonic()
        for p in partitions:
            last_seen.setdefault(p, started)

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def on_assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
        # incident state follows scores partitions: drop what moved to another worker
        now = {tp.partition for tp in assigned if tp.topic == settings.topic_scores}
        fresh = now - owned
        if fresh:  # restore now, not at the next record: its streams may never send again
            task = asyncio.ensure_future(restore_assigned(fresh))
            restoring.add(task)
            task.add_done_callback(restoring.discard)
        moved = owned - now
        if moved:
            store.forget_partitions(moved)
            for p in moved:
                last_seen.pop(p, None)
        owned.clear()
        owned.update(now)

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def close_sinks(app: faust.App, **kwargs: Any) -> None:
        for task in running:  # stop delivering (uncommitted records come again) before the producer stops
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        await store.stop()
        for d in deliveries.values():
            close = getattr(d.sink, "close", None)
            if close is not None:
                await close()

