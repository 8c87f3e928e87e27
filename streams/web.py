"""The worker's own web views: /metrics, /healthz and /readyz on Faust's web server.

Faust (aiohttp driver) already serves ``/`` (status or statistics), ``/router/``,
``/table/``, ``/graph/`` and ``/assignment/`` depending on its ``web_*_enabled`` settings;
none of those paths collide with the ones added here. Faust's legacy web server starts
before the consumer, so /healthz and /metrics answer during start-up and recovery, which
is exactly when /readyz should say 503.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import faust
from faust import web
from prometheus_client import CollectorRegistry, generate_latest

from streams.metrics import Metrics

log = logging.getLogger(__name__)

# The classic text format that generate_latest writes (our names need no UTF-8 escaping).
# prometheus_client 0.26's CONTENT_TYPE_LATEST says version=1.0.0; 0.0.4 is the version
# every Prometheus release, including Debian 12's 2.42, was written against.
EXPOSITION_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Readiness = Callable[[], tuple[bool, str]]


def register_views(
    app: faust.App,
    registry: CollectorRegistry,
    readiness: Readiness,
    before_scrape: Callable[[], None] | None = None,
) -> None:
    """Add GET /metrics, /healthz and /readyz to ``app``'s web server.

    Call once, after creating the app and before the worker starts. ``readiness`` is
    called on every /readyz request and returns ``(ready, reason)``; it must be cheap and
    must not block (it runs on the event loop). ``before_scrape`` refreshes gauges that
    are sampled rather than pushed (consumer lag) just before each exposition.
    """

    class MetricsView(web.View):
        """Prometheus text exposition of the injected registry."""

        async def get(self, request: web.Request) -> web.Response:
            if before_scrape is not None:
                try:
                    before_scrape()
                except Exception as exc:  # a stale gauge beats a failed scrape
                    log.warning("refreshing sampled metrics failed: %s", type(exc).__name__)
            body = generate_latest(registry)
            return self.bytes(body, headers={"Content-Type": EXPOSITION_CONTENT_TYPE})

    class HealthView(web.View):
        """Liveness: the event loop answers, so the process is alive."""

        async def get(self, request: web.Request) -> web.Response:
            return self.json({"status": "alive"})

    class ReadyView(web.View):
        """Readiness: 200 when the worker can process, else 503 naming why not."""

        async def get(self, request: web.Request) -> web.Response:
            try:
                ready, reason = readiness()
            except Exception as exc:  # a broken probe must say "not ready", not crash
                log.warning("readiness check raised %s", type(exc).__name__)
                ready, reason = False, f"readiness check failed ({type(exc).__name__})"
            status = 200 if ready else 503
            return self.json({"ready": ready, "reason": reason}, status=status)

    for path, view in (
        ("/metrics", MetricsView),
        ("/healthz", HealthView),
        ("/readyz", ReadyView),
    ):
        app.page(path, name=f"pynomaly{path.replace('/', '_')}")(view)


def register_worker_views(app: faust.App, metrics: Metrics) -> None:
    """The worker's wiring: views on ``metrics.registry``, Faust readiness, sampled lag."""

    def refresh() -> None:
        metrics.set_consumer_lag(faust_consumer_lag(app))

    register_views(app, metrics.registry, faust_readiness(app), before_scrape=refresh)


def faust_consumer_lag(app: faust.App) -> dict[tuple[str, int], int]:
    """``{(topic, partition): records behind}`` for the partitions assigned to this worker.

    Lag is the high watermark from the latest fetch minus the next offset to read; a
    partition whose high watermark is not known yet is left out rather than guessed.
    """
    consumer = app.consumer
    read_offsets = getattr(consumer, "_read_offset", {})  # last offset handed to a stream
    lags: dict[tuple[str, int], int] = {}
    for tp in consumer.assignment():
        try:
            high = consumer.highwater(tp)
        except Exception as exc:  # partition just revoked or consumer not started: skip it
            log.debug("no high watermark for %s: %s", tp, type(exc).__name__)
            high = None
        if high is None:
            continue
        read = read_offsets.get(tp)
        lags[(tp.topic, tp.partition)] = max(0, int(high) - (read + 1 if read is not None else 0))
    return lags


def faust_readiness(app: faust.App) -> Readiness:
    """A readiness probe built from the app's own state (no I/O, safe on the event loop).

    Not ready while: the app is not running, a rebalance is in progress, no partitions
    are assigned, table recovery has not completed, or the consumer has no live broker
    connection.
    """

    def check() -> tuple[bool, str]:
        if not app.started:
            return False, "worker is starting"
        if app.rebalancing:
            return False, "consumer group is rebalancing"
        if not app.consumer.assignment():
            return False, "no partitions assigned to this worker yet"
        recovery = getattr(app.tables, "recovery", None)  # on the concrete TableManager only
        if recovery is not None and not recovery.completed.is_set():
            return False, "table recovery in progress"
        if not _broker_connected(app):
            return False, "no live connection to the Kafka brokers"
        return True, "partitions assigned, recovered, broker reachable"

    return check


def _broker_connected(app: faust.App) -> bool:
    # aiokafka keeps one connection per broker node; a live one means the broker answered
    # recently (connections close on failure). Faust exposes no public accessor for it.
    thread = getattr(app.consumer, "_thread", None)
    consumer = getattr(thread, "_consumer", None)
    client = getattr(consumer, "_client", None)
    conns = getattr(client, "_conns", None)
    if conns is None:
        return False
    return any(conn.connected() for conn in list(conns.values()))
