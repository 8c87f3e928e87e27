"""Helpers shared by the observability tests: dashboard queries and promtool."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "dashboards"
METRIC = re.compile(r"\bpynomaly_[a-zA-Z0-9_]+")
# What Grafana substitutes before a query reaches Prometheus.
# "$stream": what Grafana substitutes for the detectors dashboard's "All" (its allValue)
GRAFANA_VARS = {"$__rate_interval": "30s", "$__interval": "15s", "$__range": "1h", "$stream": ".*"}


def panel_queries(path: Path) -> Iterator[tuple[str, str]]:
    """(panel title, PromQL expression) for every target of every panel in a dashboard."""
    board = json.loads(path.read_text())
    stack = list(board.get("panels", []))
    while stack:
        panel = stack.pop(0)
        stack.extend(panel.get("panels", []))  # panels inside collapsed rows
        for t in panel.get("targets", []):
            if t.get("expr"):
                yield panel["title"], t["expr"]


def all_queries() -> list[tuple[str, str, str]]:
    return [
        (p.name, title, expr)
        for p in sorted(DASHBOARDS.glob("*.json"))
        for title, expr in panel_queries(p)
    ]


def concrete(expr: str, rate_window: str | None = None) -> str:
    for var, value in GRAFANA_VARS.items():
        if var == "$__rate_interval" and rate_window:
            value = rate_window
        expr = expr.replace(var, value)
    return expr


def promtool() -> str | None:
    return shutil.which("promtool")


PROMTOOL_MISSING = (
    "promtool not found: install Debian's prometheus package "
    "(apt-get update && apt-get install -y prometheus); CI installs it"
)
