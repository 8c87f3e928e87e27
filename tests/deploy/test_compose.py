"""The Compose stack: validated by the real Docker Compose v2 (no engine needed for
`config`), then checked for the things Compose cannot know about this app."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from streams.alerting.settings import load_alerting_settings
from streams.settings import Settings, load_settings
from streams.topics import all_topics
from tests.deploy.support import COMPOSE_DIR, COMPOSE_FILE, Doc, compose, compose_model


@pytest.fixture(scope="module")
def model() -> Doc:
    return compose_model()


def test_compose_config_validates() -> None:
    proc = compose("config", "-q")
    assert proc.returncode == 0, proc.stderr


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker client on this machine")
def test_docker_compose_config_validates_as_a_cli_plugin(tmp_path: Path) -> None:
    # Literally `docker compose -f deploy/compose/docker-compose.yml config -q`, with the
    # Compose binary installed as a CLI plugin in a throwaway DOCKER_CONFIG.
    proc = compose("config", "-q", via_docker=True, config_dir=tmp_path / "docker")
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    "breakage",
    [
        ("condition: service_completed_successfully", "condition: finished"),  # not an enum value
        ("    depends_on:\n      kafka-init:", "    depends_on:\n      kafka-setup:"),  # no such service
        ("replicas: ${PYNOMALY_WORKERS:-2}", "replicas: two"),  # not an integer
    ],
    ids=["bad-enum", "missing-service", "bad-replicas"],
)
def test_compose_validation_is_not_vacuous(tmp_path: Path, breakage: tuple[str, str]) -> None:
    text = COMPOSE_FILE.read_text()
    old, new = breakage
    assert old in text
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(text.replace(old, new, 1))
    # Relative paths (../prometheus, ./demo_feed.py) resolve like the original's.
    for item in COMPOSE_DIR.iterdir():
        if item.name != "docker-compose.yml":
            (tmp_path / item.name).symlink_to(item)
    assert compose("config", "-q", file=broken).returncode != 0


def test_expected_services(model: Doc) -> None:
    assert {"kafka", "kafka-init", "worker", "producer", "prometheus", "grafana"} <= set(model["services"])


def test_kafka_is_apache_kafka_in_kraft_mode(model: Doc) -> None:
    kafka = model["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "ZOOKEEPER" not in " ".join(env)
    # kafka-storage format accepts only a base64url UUID: 16 bytes, 22 characters.
    cluster_id = env["CLUSTER_ID"]
    assert len(cluster_id) == 22 and len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
    advertised = env["KAFKA_ADVERTISED_LISTENERS"]
    assert "PLAINTEXT://kafka:9092" in advertised.split(",")


def test_workers_scale_and_wait_for_topics(model: Doc) -> None:
    worker = model["services"]["worker"]
    assert worker["deploy"]["replicas"] >= 2
    assert "ports" not in worker, "a published port stops the service from scaling"
    assert "container_name" not in worker
    assert worker["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"
    assert model["services"]["kafka-init"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert worker["command"] == ["worker"]
    assert worker["environment"]["PYNOMALY_WEB_HOST"] == "0.0.0.0"
    assert worker["environment"]["PYNOMALY_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert worker["read_only"] is True and worker["cap_drop"] == ["ALL"]


def test_worker_count_and_partitions_come_from_the_environment() -> None:
    model = compose_model(env={"PYNOMALY_WORKERS": "5", "PYNOMALY_PARTITIONS": "12"})
    assert model["services"]["worker"]["deploy"]["replicas"] == 5
    assert model["services"]["worker"]["environment"]["PYNOMALY_TOPIC_PARTITIONS"] == "12"
    assert model["services"]["kafka-init"]["environment"]["PARTITIONS"] == "12"


def test_partitions_agree_between_init_and_workers(model: Doc) -> None:
    init = model["services"]["kafka-init"]["environment"]["PARTITIONS"]
    for name in ("worker", "producer"):
        assert model["services"][name]["environment"]["PYNOMALY_TOPIC_PARTITIONS"] == init


def test_topic_script_creates_exactly_the_apps_topics() -> None:
    script = (COMPOSE_DIR / "create-topics.sh").read_text()
    specs = {m[0]: (m[1], m[2]) for m in re.findall(r'^\s*"([a-z.]+)\|([^|]*)\|(\w+)"', script, flags=re.M)}
    settings = Settings()
    expected = set(all_topics(settings))
    state = getattr(settings, "topic_state", None)
    if state:
        expected.add(state)
        # State must never expire: compaction only, no retention.ms.
        assert specs[state] == ("", "compact")
    assert set(specs) == expected
    assert all(policy == "delete" and retention for name, (retention, policy) in specs.items()
               if name != state)
    assert subprocess.run(["bash", "-n", str(COMPOSE_DIR / "create-topics.sh")]).returncode == 0


def test_prometheus_scrapes_every_worker_and_loads_rules(model: Doc) -> None:
    prom = model["services"]["prometheus"]
    mounts = {v["target"]: Path(v["source"]) for v in prom["volumes"] if v["type"] == "bind"}
    rules_dir = mounts["/etc/prometheus/rules"]
    assert rules_dir.parent == COMPOSE_DIR.parent / "prometheus"
    config = yaml.safe_load(mounts["/etc/prometheus/prometheus.yml"].read_text())
    # Every file the rule globs match inside the container must be a rules file, or
    # Prometheus refuses to start; and at least one must match.
    matched = [f for pattern in config["rule_files"]
               for f in rules_dir.glob(pattern.removeprefix("/etc/prometheus/rules/"))]
    assert matched, f"rule_files {config['rule_files']} match nothing in {rules_dir}"
    for f in matched:
        assert "groups" in yaml.safe_load(f.read_text()), f"{f} is not a Prometheus rules file"
    # The job the rules select on is the job this stack scrapes workers as.
    rule_jobs = {j for f in matched for j in re.findall(r'job="([^"]+)"', f.read_text())}
    assert rule_jobs == {"pynomaly"}
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "pynomaly")
    sd = job["dns_sd_configs"][0]
    port = int(model["services"]["worker"]["environment"]["PYNOMALY_WEB_PORT"])
    assert sd["names"] == ["worker"] and sd["port"] == port and job["metrics_path"] == "/metrics"


def test_grafana_is_provisioned_from_the_repo(model: Doc) -> None:
    grafana = model["services"]["grafana"]
    mounts = {v["target"]: Path(v["source"]) for v in grafana["volumes"] if v["type"] == "bind"}
    assert mounts["/etc/grafana/provisioning"] == COMPOSE_DIR.parent / "grafana" / "provisioning"
    assert mounts["/var/lib/grafana/dashboards"] == COMPOSE_DIR.parents[1] / "dashboards"


def test_producer_runs_the_demo_feed(model: Doc) -> None:
    producer = model["services"]["producer"]
    mounts = {v["target"]: Path(v["source"]) for v in producer["volumes"] if v["type"] == "bind"}
    script = producer["entrypoint"][-1]
    assert mounts[script] == COMPOSE_DIR / "demo_feed.py" and mounts[script].is_file()
    assert producer["healthcheck"]["disable"] is True  # it serves no /healthz


@pytest.mark.parametrize("service", ["worker", "producer"])
def test_service_environment_loads_as_valid_settings(model: Doc, service: str) -> None:
    env = {k: str(v) for k, v in model["services"][service]["environment"].items() if v is not None}
    settings = load_settings(environ=env)  # raises on any invalid PYNOMALY_* value
    load_alerting_settings(environ=env)  # empty sink secrets are valid: sinks disabled
    advertised = model["services"]["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert f"PLAINTEXT://{settings.kafka_bootstrap}" in advertised
    assert settings.topic_replication == 1  # one broker
    assert not settings.dev_broker  # Apache Kafka, not Tansu
