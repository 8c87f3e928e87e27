"""The rendered objects agree with each other, with the image and with the app's settings.

Schemas cannot see these: a KEDA trigger watching the wrong consumer group, more replicas
than partitions, a probe on a port the container does not open, a setting the worker
rejects at start-up.
"""

from __future__ import annotations

import re
import ssl
import subprocess
from pathlib import Path

import pytest

from streams.alerting.settings import load_alerting_settings
from streams.app import faust_settings
from streams.settings import Settings, describe_settings, load_settings
from tests.deploy.support import KUSTOMIZATIONS, ROOT, Doc, one

OVERLAYS = ("dev", "prod")
ALL = sorted(KUSTOMIZATIONS)
# KEDA's names for our SASL mechanisms (its `sasl` trigger parameter).
KEDA_SASL = {"PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256", "SCRAM-SHA-512": "scram_sha512"}
# Secrets created outside the repository in production (docs/deploy.md says how).
EXTERNAL_SECRETS = {"pynomaly-kafka", "pynomaly-kafka-tls", "pynomaly-secrets"}


def env_of(docs: list[Doc]) -> dict[str, str]:
    return dict(one(docs, "ConfigMap", "pynomaly-env")["data"])


def pod_spec(docs: list[Doc]) -> Doc:
    spec: Doc = one(docs, "Deployment")["spec"]["template"]["spec"]
    return spec


def container(docs: list[Doc]) -> Doc:
    containers = pod_spec(docs)["containers"]
    assert len(containers) == 1
    c: Doc = containers[0]
    return c


def kafka_trigger(docs: list[Doc]) -> Doc:
    triggers = one(docs, "ScaledObject")["spec"]["triggers"]
    kafka = [t for t in triggers if t["type"] == "kafka"]
    assert len(kafka) == 1, f"expected one kafka trigger, got {triggers}"
    t: Doc = kafka[0]
    return t


def settings_for(docs: list[Doc], tmp_path: Path) -> Settings:
    """Load Settings exactly as a pod would: ConfigMap env + the mounted TOML file."""
    env = env_of(docs)
    toml = tmp_path / "pynomaly.toml"
    toml.write_text(one(docs, "ConfigMap", "pynomaly-config")["data"]["pynomaly.toml"])
    env.pop("PYNOMALY_CONFIG")
    return load_settings(config=toml, environ=env)


@pytest.mark.parametrize("name", ALL)
def test_settings_load_as_the_worker_would(rendered: dict[str, list[Doc]], name: str, tmp_path: Path) -> None:
    s = settings_for(rendered[name], tmp_path)
    assert s.web_host == "0.0.0.0"  # probes and Prometheus come from outside the pod
    assert s.app_id == "pynomaly"
    # The [alerting] table passes the alerting package's own validation (routes included).
    alerting = load_alerting_settings(environ={}, table=s.extra["alerting"])
    assert [r.name for r in alerting.router().routes] == ["critical", "default"]


def self_signed_ca(tmp_path: Path) -> Path:
    """A real CA certificate standing in for the mounted pynomaly-kafka-tls Secret."""
    cert, key = tmp_path / "ca.crt", tmp_path / "ca.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=pynomaly-test-ca", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert


@pytest.mark.parametrize("name", ALL)
def test_faust_config_matches_the_manifests(rendered: dict[str, list[Doc]], name: str, tmp_path: Path) -> None:
    # What the worker hands Faust, built by the app's own translation from the pod's settings.
    docs = rendered[name]
    settings = settings_for(docs, tmp_path)
    if settings.kafka_ssl_cafile:
        settings = settings.with_overrides(kafka_ssl_cafile=str(self_signed_ca(tmp_path)))
    conf = faust_settings(settings)
    meta = kafka_trigger(docs)["metadata"]
    # KEDA counts lag of a group without offsets the way the consumer will start reading.
    assert meta["offsetResetPolicy"] == conf["consumer_auto_offset_reset"]
    assert conf["broker"] == [f"kafka://{hp.strip()}" for hp in meta["bootstrapServers"].split(",")]
    web = {p["name"]: p["containerPort"] for p in container(docs)["ports"]}["web"]
    assert conf["web_bind"] == "0.0.0.0" and conf["web_port"] == web
    creds = conf["broker_credentials"]
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        assert creds is None
    else:
        assert isinstance(creds.ssl_context, ssl.SSLContext) == ("SSL" in protocol)
    if protocol.startswith("SASL"):
        assert creds.mechanism.value == settings.kafka_sasl_mechanism
        assert KEDA_SASL[creds.mechanism.value] == meta["sasl"]


@pytest.mark.parametrize("name", ALL)
def test_configmap_names_only_known_settings(rendered: dict[str, list[Doc]], name: str) -> None:
    known = {env for env, _, _ in describe_settings()} | {"PYNOMALY_CONFIG"}
    unknown = set(env_of(rendered[name])) - known
    assert not unknown, f"{name}: {unknown} are not settings (typo?); see `pynomaly settings`"


@pytest.mark.parametrize("name", ALL)
def test_keda_watches_the_apps_consumer_group_and_topic(rendered: dict[str, list[Doc]], name: str) -> None:
    docs = rendered[name]
    env, meta = env_of(docs), kafka_trigger(docs)["metadata"]
    assert meta["consumerGroup"] == env["PYNOMALY_APP_ID"] == "pynomaly"
    assert meta["topic"] == env["PYNOMALY_TOPIC_EVENTS"] == "pynomaly.events"
    assert meta["bootstrapServers"] == env["PYNOMALY_KAFKA_BOOTSTRAP"]
    so = one(docs, "ScaledObject")
    assert so["spec"]["scaleTargetRef"]["name"] == one(docs, "Deployment")["metadata"]["name"]


@pytest.mark.parametrize("name", ALL)
def test_max_replicas_do_not_exceed_partitions(rendered: dict[str, list[Doc]], name: str) -> None:
    docs = rendered[name]
    spec = one(docs, "ScaledObject")["spec"]
    partitions = int(env_of(docs)["PYNOMALY_TOPIC_PARTITIONS"])
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= partitions
    # KEDA must not add consumers that would own no partition.
    assert kafka_trigger(docs)["metadata"].get("allowIdleConsumers", "false") == "false"


@pytest.mark.parametrize("name", ALL)
def test_keda_uses_the_workers_kafka_security(rendered: dict[str, list[Doc]], name: str) -> None:
    docs = rendered[name]
    env, trigger = env_of(docs), kafka_trigger(docs)
    protocol = env["PYNOMALY_KAFKA_SECURITY_PROTOCOL"]
    meta = trigger["metadata"]
    if protocol.startswith("SASL"):
        mechanism = env.get("PYNOMALY_KAFKA_SASL_MECHANISM", "PLAIN")
        assert meta["sasl"] == KEDA_SASL[mechanism]
        auth = one(docs, "TriggerAuthentication", trigger["authenticationRef"]["name"])
        params = {r["parameter"]: (r["name"], r["key"]) for r in auth["spec"]["secretTargetRef"]}
        env_refs = {e["name"]: (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
                    for e in container(docs)["env"] if "valueFrom" in e}
        # KEDA and the worker log in with the same secret keys.
        assert params["username"] == env_refs["PYNOMALY_KAFKA_SASL_USERNAME"]
        assert params["password"] == env_refs["PYNOMALY_KAFKA_SASL_PASSWORD"]
    else:
        assert "sasl" not in meta and "authenticationRef" not in trigger
    tls = protocol in {"SSL", "SASL_SSL"}
    assert (meta.get("tls") == "enable") == tls
    if tls and env.get("PYNOMALY_KAFKA_SSL_CAFILE"):
        cafile = env["PYNOMALY_KAFKA_SSL_CAFILE"]
        mounts = [m["mountPath"] for m in container(docs)["volumeMounts"]]
        assert any(cafile.startswith(m.rstrip("/") + "/") for m in mounts), f"{cafile} is not mounted"


@pytest.mark.parametrize("name", ALL)
def test_probes_ports_and_selectors_line_up(rendered: dict[str, list[Doc]], name: str) -> None:
    docs = rendered[name]
    env, c = env_of(docs), container(docs)
    labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports["web"] == int(env["PYNOMALY_WEB_PORT"])
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "web"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "web"}
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"

    def selects(selector: dict[str, str]) -> bool:
        return bool(selector) and all(labels.get(k) == v for k, v in selector.items())

    assert selects(one(docs, "Deployment")["spec"]["selector"]["matchLabels"])
    assert selects(one(docs, "Service", "pynomaly-worker")["spec"]["selector"])
    assert selects(one(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"])
    assert selects(one(docs, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"])
    pm = one(docs, "PodMonitor")
    assert selects(pm["spec"]["selector"]["matchLabels"])
    assert all(ep["port"] in ports and ep["path"] == "/metrics" for ep in pm["spec"]["podMetricsEndpoints"])
    # The alert rules select job="pynomaly"; a PodMonitor's job is "<ns>/<name>" unless
    # jobLabel names a pod label.
    assert labels[pm["spec"]["jobLabel"]] == "pynomaly"
    ingress_ports = {p["port"] for rule in one(docs, "NetworkPolicy")["spec"]["ingress"] for p in rule["ports"]}
    assert ports["web"] in ingress_ports


@pytest.mark.parametrize("name", ALL)
def test_pod_is_locked_down_and_stateless(rendered: dict[str, list[Doc]], name: str) -> None:
    docs = rendered[name]
    spec, c, env = pod_spec(docs), container(docs), env_of(docs)
    assert "replicas" not in one(docs, "Deployment")["spec"], "KEDA owns the replica count"
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == dockerfile_uid() != 0
    assert spec["automountServiceAccountToken"] is False
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"]
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    # The only writable paths are emptyDirs: the data dir and /tmp. Nothing persistent.
    for path in (env["PYNOMALY_DATA_DIR"], "/tmp"):
        assert "emptyDir" in volumes[mounts[path]], f"{path} must be an emptyDir"
    assert not any("persistentVolumeClaim" in v or "hostPath" in v for v in volumes.values())
    config_dir, _, config_file = env["PYNOMALY_CONFIG"].rpartition("/")
    cm_volume = volumes[mounts[config_dir]]
    assert cm_volume["configMap"]["name"] == "pynomaly-config"
    assert config_file in one(docs, "ConfigMap", "pynomaly-config")["data"]


@pytest.mark.parametrize("name", OVERLAYS)
def test_overlay_namespaces_everything(rendered: dict[str, list[Doc]], name: str) -> None:
    namespaces = {d["metadata"].get("namespace") for d in rendered[name]}
    assert namespaces == {f"pynomaly-{name}" if name == "dev" else "pynomaly"}


@pytest.mark.parametrize("name", ALL)
def test_secret_references_resolve(rendered: dict[str, list[Doc]], name: str) -> None:
    docs = rendered[name]
    c, spec = container(docs), pod_spec(docs)
    referenced = {e["valueFrom"]["secretKeyRef"]["name"] for e in c.get("env", []) if "valueFrom" in e}
    referenced |= {e["secretRef"]["name"] for e in c["envFrom"] if "secretRef" in e}
    referenced |= {v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v}
    for auth in (d for d in docs if d["kind"] == "TriggerAuthentication"):
        referenced |= {r["name"] for r in auth["spec"]["secretTargetRef"]}
    in_repo = {d["metadata"]["name"] for d in docs if d["kind"] == "Secret"}
    assert referenced - in_repo <= EXTERNAL_SECRETS
    deploy_doc = (ROOT / "docs" / "deploy.md").read_text()
    for secret in referenced - in_repo:
        assert secret in deploy_doc, f"docs/deploy.md must say how to create Secret {secret}"


def test_dev_kafka_is_where_the_workers_look(rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["dev"]
    host, _, port = env_of(docs)["PYNOMALY_KAFKA_BOOTSTRAP"].rpartition(":")
    name, namespace, *_ = host.split(".")
    service = one(docs, "Service", name)
    assert service["metadata"]["namespace"] == namespace
    assert int(port) in {p["port"] for p in service["spec"]["ports"]}
    kafka = one(docs, "StatefulSet", name)
    pod_labels = kafka["spec"]["template"]["metadata"]["labels"]
    assert all(pod_labels.get(k) == v for k, v in service["spec"]["selector"].items())
    env = {e["name"]: e["value"] for e in kafka["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert f"PLAINTEXT://{host}:{port}" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert int(env_of(docs)["PYNOMALY_TOPIC_REPLICATION"]) == 1  # one broker


def test_prod_ships_no_secret_values(rendered: dict[str, list[Doc]]) -> None:
    assert not [d for d in rendered["prod"] if d["kind"] == "Secret"]
    required = [e for e in container(rendered["prod"])["env"] if "valueFrom" in e]
    assert required and all(e["valueFrom"]["secretKeyRef"]["optional"] is False for e in required)


def test_prod_is_highly_available(rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["prod"]
    env = env_of(docs)
    assert int(env["PYNOMALY_TOPIC_REPLICATION"]) >= 3
    assert env["PYNOMALY_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert one(docs, "ScaledObject")["spec"]["minReplicaCount"] >= 2
    pdb = one(docs, "PodDisruptionBudget")["spec"]
    assert pdb.get("maxUnavailable") == 1 and "minAvailable" not in pdb


def dockerfile_uid() -> int:
    text = (ROOT / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.M)
    assert users, "Dockerfile has no USER"
    return int(users[-1].split(":")[0])
