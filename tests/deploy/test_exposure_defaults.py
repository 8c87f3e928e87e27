"""Issue 13, findings 4 and 7: the shipped deployments do not expose the control API or a
publicly known signing key.

The image binds the web server (which serves /silences and /feedback) on 0.0.0.0, so every
deployment must give the worker a control token, or the worker refuses to start; Compose
requires the token and the state key (no fixed default) and publishes Kafka on loopback
only.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.alerting.control import check_exposure
from streams.alerting.settings import load_alerting_settings
from streams.checkpoints import state_key
from streams.settings import load_settings
from tests.deploy.support import Doc, compose, compose_model, one
from tests.deploy.test_k8s_consistency import settings_for


@pytest.mark.parametrize("missing", ["PYNOMALY_CONTROL_TOKEN", "PYNOMALY_STATE_HMAC_KEY"])
def test_compose_requires_the_control_token_and_the_state_key(missing: str) -> None:
    proc = compose("config", "-q", env={missing: ""})
    assert proc.returncode != 0 and missing in proc.stderr, proc.stderr


def test_compose_workers_pass_the_exposure_check_and_kafka_is_on_loopback() -> None:
    model = compose_model()
    env = {k: str(v) for k, v in model["services"]["worker"]["environment"].items() if v is not None}
    settings = load_settings(environ=env)
    assert settings.web_host == "0.0.0.0"
    check_exposure(settings, load_alerting_settings(env, {}))
    assert settings.state_hmac_key.reveal() != "dev-only-not-a-secret"
    for port in model["services"]["kafka"]["ports"]:
        assert port.get("host_ip") == "127.0.0.1", port


def test_k8s_dev_workers_pass_the_exposure_check(rendered: dict[str, list[Doc]], tmp_path: Path) -> None:
    import base64

    docs = rendered["dev"]
    settings = settings_for(docs, tmp_path)
    secret = one(docs, "Secret", "pynomaly-secrets")
    data = {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}
    data.update(secret.get("stringData", {}))
    check_exposure(settings, load_alerting_settings(data, {}))


def test_prod_docs_say_to_create_the_control_token() -> None:
    from tests.deploy.support import ROOT

    text = (ROOT / "deploy" / "k8s" / "overlays" / "prod" / "kustomization.yaml").read_text()
    assert "PYNOMALY_CONTROL_TOKEN" in text
    assert "PYNOMALY_CONTROL_TOKEN" in (ROOT / "docs" / "deploy.md").read_text()


@pytest.mark.parametrize("bootstrap", ["kafka.prod.svc:9092", "10.0.0.5:9092", "127.0.0.1:9092,broker:9092"])
def test_the_derived_dev_key_is_only_for_a_broker_on_loopback(bootstrap: str) -> None:
    assert state_key(load_settings(environ={}, dev_broker=True, kafka_bootstrap=bootstrap)) is None
    assert state_key(load_settings(environ={}, dev_broker=True, kafka_bootstrap="127.0.0.1:9092")) is not None


def test_the_image_installs_with_the_pinned_constraints() -> None:
    from tests.deploy.support import ROOT
    from tests.deploy.test_dockerfile import instructions, stages

    builder = stages(instructions((ROOT / "Dockerfile").read_text()))[0]
    copied = {tok for k, a in builder if k == "COPY" for tok in a.split()[:-1]}
    assert "constraints.txt" in copied
    installs = [a for k, a in builder if k == "RUN" and "pip install" in a]
    assert installs and all("-c constraints.txt" in a for a in installs), installs
