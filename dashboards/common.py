"""Shared building blocks of the dashboards: datasource variable, panels, PromQL helpers.

Metric names always come from :mod:`streams.metrics`; these helpers only add PromQL.
``$__rate_interval`` lets Grafana pick a rate window that suits the scrape interval.
"""

from __future__ import annotations

from collections.abc import Sequence

from grafanalib.core import (
    Dashboard,
    GridPos,
    Stat,
    Target,
    Template,
    Templating,
    Time,
    TimeSeries,
)

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"
WIDTH, HEIGHT = 12, 8


def rate(name: str, by: str = "", selector: str = "") -> str:
    """Per-second rate of a counter, summed over workers (optionally by labels)."""
    group = f" by ({by})" if by else ""
    return f"sum{group}(rate({name}{selector}[{RATE}]))"


def quantile(q: float, histogram: str, by: str = "") -> str:
    """A quantile of a histogram across all workers."""
    labels = ", ".join(["le", *([by] if by else [])])
    return f"histogram_quantile({q}, sum by ({labels})(rate({histogram}_bucket[{RATE}])))"


def target(expr: str, legend: str = "", ref: str = "A") -> Target:
    return Target(expr=expr, legendFormat=legend, refId=ref, datasource=DATASOURCE)


def targets(*pairs: tuple[str, str]) -> list[Target]:
    return [target(e, leg, chr(ord("A") + i)) for i, (e, leg) in enumerate(pairs)]


def series(title: str, description: str, queries: Sequence[Target], unit: str = "short",
           stacked: bool = False, links: Sequence[dict[str, object]] = ()) -> TimeSeries:
    """A time-series panel; ``links`` are data links (Grafana ``fieldConfig.defaults.links``)."""
    return TimeSeries(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=list(queries),
        unit=unit,
        stacking={"mode": "normal", "group": "A"} if stacked else {},
        legendDisplayMode="table",
        legendCalcs=["lastNotNull", "max"],
        extraJson={"fieldConfig": {"defaults": {"links": list(links)}}} if links else None,
    )


def stat(title: str, description: str, query: Target, unit: str = "short") -> Stat:
    return Stat(title=title, description=description, dataSource=DATASOURCE,
                targets=[query], format=unit, reduceCalc="lastNotNull")


def build(title: str, uid: str, description: str, panels: Sequence[object]) -> Dashboard:
    """A dashboard with a Prometheus datasource picker and panels laid out two per row."""
    placed = []
    for i, panel in enumerate(panels):
        x, y = (i % 2) * WIDTH, (i // 2) * HEIGHT
        panel.gridPos = GridPos(h=HEIGHT, w=WIDTH, x=x, y=y)  # type: ignore[attr-defined]
        placed.append(panel)
    return Dashboard(
        title=title,
        uid=uid,
        description=description,
        tags=["pynomaly"],
        timezone="utc",
        time=Time("now-1h", "now"),
        refresh="30s",
        templating=Templating(list=[
            Template(name="datasource", label="Data source", type="datasource",
                     query="prometheus", default="Prometheus"),
        ]),
        panels=placed,
    ).auto_panel_ids()
