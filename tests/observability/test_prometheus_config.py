"""The Prometheus config and alert rules are valid, tested, and use exported metric names."""

from __future__ import annotations

import subprocess

import pytest
from prometheus_client import CollectorRegistry

from streams.metrics import Metrics
from tests.observability.obs_support import METRIC, PROMTOOL_MISSING, ROOT, promtool

PROM = ROOT / "deploy" / "prometheus"
RULES = PROM / "rules" / "pynomaly.rules.yml"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = promtool()
    if tool is None:
        pytest.skip(PROMTOOL_MISSING)
    return subprocess.run([tool, *args], capture_output=True, text=True, cwd=PROM, timeout=60)


def test_promtool_check_config() -> None:
    out = _promtool("check", "config", "prometheus.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 rule files found" in out.stdout


def test_promtool_check_rules() -> None:
    out = _promtool("check", "rules", str(RULES))
    assert out.returncode == 0, out.stdout + out.stderr


def test_promtool_rule_unit_tests() -> None:
    tests = sorted(str(p) for p in (PROM / "tests").glob("*.test.yml"))
    assert tests
    out = _promtool("test", "rules", *tests)
    assert out.returncode == 0, out.stdout + out.stderr


def test_rules_only_use_exported_metrics() -> None:
    exposed = Metrics(CollectorRegistry()).exposed_names()
    used = set(METRIC.findall(RULES.read_text()))
    assert len(used) >= 5
    assert used <= exposed, f"rules use metrics the code does not export: {used - exposed}"


def test_compose_prometheus_loads_these_rules(tmp_path) -> None:
    """deploy/compose mounts a directory as /etc/prometheus/rules; it must hold only rules."""
    import yaml

    compose = ROOT / "deploy" / "compose"
    if not (compose / "docker-compose.yml").exists():
        pytest.skip("no deploy/compose stack")
    services = yaml.safe_load((compose / "docker-compose.yml").read_text())["services"]
    mounts = [m.split(":") for m in services["prometheus"]["volumes"]]
    rules_src = next(src for src, dst, *_ in mounts if dst == "/etc/prometheus/rules")
    rules_dir = (compose / rules_src).resolve()
    config = (compose / "prometheus.yml").read_text().replace("/etc/prometheus/rules", str(rules_dir))
    (tmp_path / "prometheus.yml").write_text(config)
    out = _promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert out.returncode == 0, (
        f"compose mounts {rules_src} as its rules directory:\n{out.stdout}{out.stderr}\n"
        "mount ../prometheus/rules:/etc/prometheus/rules:ro instead"
    )
    assert "pynomaly.rules.yml" in out.stdout
