"""``federation-list verify``: exit codes and printed facts, run as a separate process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.fakes.fedlist_pki import ListPki
from tests.support.gateway import REPO
from tests.timinfo.conftest import KOMP_CA50, ROOTS, V1650


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "import sys, timinfo.cli as c; sys.exit(c.verify_main(sys.argv[1:]))",
                           *args], cwd=REPO, capture_output=True, text=True, timeout=60)


def test_real_fixture_verifies() -> None:
    r = run(str(V1650), "--tsl-roots", str(ROOTS), "--intermediate", str(KOMP_CA50))
    assert r.returncode == 0, r.stderr
    assert "version: 1650" in r.stdout and "entries: 277" in r.stdout and "insurers: 18" in r.stdout
    assert "signer: CN=VZD-FHIR-FList-Signer" in r.stdout
    assert "GEM.RCA4 TEST-ONLY" in r.stdout and "result: OK" in r.stdout


def test_bundled_trust_shortcut() -> None:
    r = run("bundled:federationList-ru-v1650.jws", "--tsl-roots", "bundled:tsl-roots-ru.json",
            "--intermediate", "bundled:GEM.KOMP-CA50-TEST-ONLY.pem")
    assert r.returncode == 0, r.stderr


def test_untrusted_fails(test_pki: ListPki) -> None:
    r = run(str(V1650), "--trust", str(test_pki.root_pem))
    assert r.returncode == 1 and "REJECTED (untrusted_chain)" in r.stdout


def test_expired_at_given_time_fails() -> None:
    r = run(str(V1650), "--tsl-roots", str(ROOTS), "--intermediate", str(KOMP_CA50), "--at", "2028-02-01T00:00:00Z")
    assert r.returncode == 1 and "cert_not_valid" in r.stdout


def test_usage_errors(tmp_path: Path) -> None:
    assert run(str(V1650)).returncode == 2
    assert run(str(tmp_path / "missing.jws"), "--trust", str(KOMP_CA50)).returncode == 2
    assert run(str(V1650), "--trust", str(V1650)).returncode == 2  # not a PEM
