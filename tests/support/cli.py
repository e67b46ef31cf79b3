"""Run the gateway's command line (``python -m gateway ...``) as a real process and capture its output."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support.gateway import REPO


@dataclass
class Run:
    code: int
    out: str
    err: str


def cli(*args: str, env: dict[str, str] | None = None) -> Run:
    """One CLI run from the repository root; `env` is added to this process's environment."""
    p = subprocess.run([sys.executable, "-m", "gateway", *args], cwd=str(REPO), capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})}, timeout=60)
    return Run(p.returncode, p.stdout, p.stderr)


def write_config(tmp_path: Path, config: dict[str, Any], name: str = "gw.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return path
