"""`pynomaly worker`: create topics, build the app and run a Faust worker until stopped."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

import faust

from detectors.rules import PipelineFactory
from streams.alerting.control import check_exposure
from streams.alerting.settings import load_alerting_settings
from streams.app import create_app
from streams.errors import PynomalyError
from streams.settings import Settings
from streams.topics import ensure_topics

log = logging.getLogger(__name__)


def prepare_topics(settings: Settings, attempts: int = 30) -> None:
    """Create missing topics, waiting for a broker that is still starting."""
    loop = asyncio.new_event_loop()
    try:
        for attempt in range(attempts):
            try:
                loop.run_until_complete(ensure_topics(settings))
                return
            except PynomalyError as exc:
                if attempt == attempts - 1:
                    raise
                if attempt == 0:
                    print(f"pynomaly: {exc}; retrying for {attempts}s", file=sys.stderr, flush=True)
                loop.run_until_complete(asyncio.sleep(1.0))
    finally:
        loop.close()
        asyncio.set_event_loop(asyncio.new_event_loop())


def uses_windowed_detectors(settings: Settings) -> bool:
    factory = PipelineFactory.from_settings(settings)
    names = [factory.default.detector, *(r.config.detector for r in factory.rules)]
    return any(n.startswith("pyod.") for n in names)


def run_worker(settings: Settings) -> int:
    alerting = load_alerting_settings(os.environ, settings.extra.get("alerting", {}))
    check_exposure(settings, alerting)  # before touching Kafka: a refused bind fails fast
    if uses_windowed_detectors(settings):
        # One-off compile costs (numba: HBOS) at start-up, not on a stream's first refit.
        from detectors.windowed_pyod import warm_up_compilers

        log.info("compiled windowed detectors in %.1fs", warm_up_compilers())
    prepare_topics(settings)
    app = create_app(settings, alerting=alerting)
    worker = faust.Worker(app, loglevel=settings.log_level.upper(), quiet=True)
    log.info(
        "worker %s consuming %s from %s (web port %d)",
        settings.app_id, settings.topic_events, settings.kafka_bootstrap, settings.web_port,
    )
    worker.execute_from_commandline()  # returns or exits on SIGTERM / Ctrl-C
    return 0
