"""Grafana provisioning points at the rendered dashboards and the datasource they expect."""

from __future__ import annotations

import json

import yaml

from tests.observability.obs_support import DASHBOARDS, ROOT

PROV = ROOT / "deploy" / "grafana" / "provisioning"
COMPOSE = ROOT / "deploy" / "compose" / "docker-compose.yml"


def test_datasource_matches_dashboard_variable() -> None:
    doc = yaml.safe_load((PROV / "datasources" / "prometheus.yml").read_text())
    (ds,) = doc["datasources"]
    assert ds["type"] == "prometheus" and ds["isDefault"] is True
    for path in DASHBOARDS.glob("*.json"):
        var = next(v for v in json.loads(path.read_text())["templating"]["list"]
                   if v["name"] == "datasource")
        assert var["query"] == "prometheus"
        assert var["current"]["text"] == ds["name"], f"{path.name} defaults to another datasource"


def test_dashboard_provider_loads_the_rendered_json() -> None:
    doc = yaml.safe_load((PROV / "dashboards" / "pynomaly.yml").read_text())
    (provider,) = doc["providers"]
    assert provider["type"] == "file"
    path = provider["options"]["path"]
    assert list(DASHBOARDS.glob("*.json")), "no rendered dashboards"
    if COMPOSE.exists():  # the compose stack mounts dashboards/ where the provider looks
        compose = yaml.safe_load(COMPOSE.read_text())
        mounts = compose["services"]["grafana"]["volumes"]
        assert any(m.split(":")[1] == path and m.split(":")[0].endswith("dashboards")
                   for m in mounts), mounts
        assert any(m.split(":")[1] == "/etc/grafana/provisioning" for m in mounts), mounts
