"""The detectors dashboard has the `stream` variable alert links set, and links to the explorer."""

from __future__ import annotations

import json
import urllib.parse

from streams.alerting.notify import dashboard_link
from tests.observability.obs_support import DASHBOARDS


def _board() -> dict:
    return json.loads((DASHBOARDS / "detectors.json").read_text())


def test_alert_links_set_a_variable_the_dashboard_defines():
    board = _board()
    link = dashboard_link("https://grafana.example.com", board["uid"], "payments.latency", 1.79e9, None)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)
    variables = {v["name"]: v for v in board["templating"]["list"]}
    names = [k.removeprefix("var-") for k in query if k.startswith("var-")]
    assert names == ["stream"] and "stream" in variables
    stream = variables["stream"]
    assert stream["type"] == "query" and "pynomaly_stream_score" in json.dumps(stream["query"])
    assert stream["includeAll"] and stream["multi"]


def test_score_panel_filters_by_stream_and_links_to_the_explorer():
    board = _board()
    [panel] = [p for p in board["panels"] if "pynomaly_stream_score" in json.dumps(p["targets"])]
    assert '{stream=~"$stream"}' in panel["targets"][0]["expr"]
    [link] = panel["fieldConfig"]["defaults"]["links"]
    url = urllib.parse.urlsplit(link["url"])
    assert link["url"].startswith("${explore_url}/explore?")
    query = urllib.parse.parse_qs(url.query)
    assert query["stream"] == ["${__field.labels.stream}"]
    assert query["from"] == ["${__from:date:seconds}"] and query["to"] == ["${__to:date:seconds}"]
    assert "explore_url" in {v["name"] for v in board["templating"]["list"]}
