"""``python -m streams.alerting.worker``: a scoring worker with alerting agents added.

Until ``streams.app.create_app`` calls :func:`register_alerting` itself, this runs the
same worker as ``pynomaly worker`` plus the incident and notify agents. Registration is
idempotent, so it stays correct after the lead wires alerting into ``create_app``.
"""

from __future__ import annotations

import logging
import os
import sys

import faust

from streams.alerting.agents import register_alerting
from streams.alerting.settings import load_alerting_settings
from streams.app import create_app
from streams.errors import PynomalyError
from streams.settings import load_settings
from streams.worker import prepare_topics


def main() -> int:
    try:
        settings = load_settings()
        alerting = load_alerting_settings(os.environ, settings.extra.get("alerting", {}))
    except PynomalyError as exc:
        print(f"pynomaly: error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    prepare_topics(settings)
    app = create_app(settings)
    register_alerting(app, settings, alerting, app.runtime.metrics)  # type: ignore[attr-defined]
    faust.Worker(app, loglevel=settings.log_level.upper(), quiet=True).execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
