"""Rendered dashboards are fresh, valid PromQL, and only query metrics the code exports."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from dashboards import render
from streams.metrics import Metrics
from tests.observability.obs_support import (
    DASHBOARDS,
    METRIC,
    PROMTOOL_MISSING,
    all_queries,
    concrete,
    promtool,
)


def test_committed_json_is_fresh() -> None:
    assert render.sources(), "no dashboards/*.dashboard.py found"
    stale = render.stale()
    assert not stale, f"stale dashboards {stale}; run `python -m dashboards.render`"


def test_check_detects_stale_and_missing_json(tmp_path: Path) -> None:
    for src in render.sources():
        shutil.copy(src, tmp_path / src.name)
        shutil.copy(render.output_path(src), tmp_path / render.output_path(src).name)
    assert render.stale(tmp_path) == []
    edited = tmp_path / "overview.json"
    edited.write_text(edited.read_text().replace("Throughput", "Thruput"))
    (tmp_path / "detectors.json").unlink()
    assert sorted(p.name for p in render.stale(tmp_path)) == ["detectors.json", "overview.json"]


def query_problems(queries: list[tuple[str, str, str]], exposed: set[str]) -> list[str]:
    """What is wrong with dashboard queries: ones naming no pynomaly metric or one not exported."""
    problems = []
    for board, title, expr in queries:
        names = set(METRIC.findall(expr))
        if not names:
            problems.append(f"{board} / {title}: query uses no pynomaly metric: {expr}")
        unknown = names - exposed
        if unknown:
            problems.append(f"{board} / {title} queries {sorted(unknown)}, not exported by Metrics")
    return problems


def test_dashboards_only_query_exported_metrics() -> None:
    exposed = Metrics(CollectorRegistry(), score_streams=["s"]).exposed_names()
    queries = all_queries()
    assert len(queries) >= 25
    assert query_problems(queries, exposed) == []
    used = {name for _, _, expr in queries for name in METRIC.findall(expr)}
    # Every panel family the brief names is on a dashboard.
    for needed in ("pynomaly_anomalies_total", "pynomaly_open_incidents",
                   "pynomaly_notifications_total", "pynomaly_events_deadlettered_total",
                   "pynomaly_consumer_lag_records", "pynomaly_detector_state_bytes",
                   "pynomaly_stream_score", "pynomaly_calibrated_score_bucket"):
        assert needed in used, f"no panel shows {needed}"


def test_unknown_metric_would_be_caught() -> None:
    """The checker above, run on the real queries plus a typo and a query of no metric."""
    exposed = Metrics(CollectorRegistry()).exposed_names()
    queries = [*all_queries(),
               ("overview", "Anomalies (typo)", "sum(rate(pynomaly_anomaly_total[5m]))"),
               ("overview", "Up", "up{job='x'}")]
    problems = query_problems(queries, exposed)
    assert len(problems) == 2, problems
    assert "Anomalies (typo)" in problems[0] and "pynomaly_anomaly_total" in problems[0]
    assert "Up" in problems[1] and "no pynomaly metric" in problems[1]


def test_panels_have_layout_and_datasource() -> None:
    import json

    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        assert board["uid"].startswith("pynomaly-")
        names = [v["name"] for v in board["templating"]["list"]]
        assert "datasource" in names
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids))
        for p in board["panels"]:
            assert p["gridPos"]["w"] > 0 and p["datasource"]["uid"] == "${datasource}"


def test_queries_are_valid_promql(tmp_path: Path) -> None:
    tool = promtool()
    if tool is None:
        pytest.skip(PROMTOOL_MISSING)
    # promtool has no bare "parse this query" command; recording rules carry PromQL it checks.
    rules = ["groups:", "  - name: dashboard_queries", "    rules:"]
    for i, (_, _, expr) in enumerate(all_queries()):
        rules += [f"      - record: q:{i}", f"        expr: '{concrete(expr)}'"]
    f = tmp_path / "q.rules.yml"
    f.write_text("\n".join(rules) + "\n")
    out = subprocess.run([tool, "check", "rules", str(f)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
