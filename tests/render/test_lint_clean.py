"""`hardener lint` finds nothing at medium or above in any rendered built-in profile.

The certificate is one a CA issued for the profile's myhostname (tests/fixtures/tls.py), as a real
deployment would have; the default path (Debian's snakeoil) is a self-signed certificate that lint
rightly reports when the file exists.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.render.helpers import PROFILES, REQUIRED_SETS, render


@pytest.mark.parametrize("profile", PROFILES)
def test_rendered_profile_is_lint_clean(profile: str, tmp_path: Path, cert_factory) -> None:
    hostname = next(s.split("=", 1)[1] for s in REQUIRED_SETS[profile] if s.startswith("myhostname="))
    cert = cert_factory.valid(hostname)
    out = tmp_path / "etc"
    render(profile, f"config_directory={out}", f"smtpd_tls_cert_file={cert.chain}",
           f"smtpd_tls_key_file={cert.key}", out=out)
    proc = subprocess.run([sys.executable, "-m", "hardener", "lint", str(out), "--format", "json",
                           "--fail-on", "medium"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    findings = [f for t in report["targets"] for f in t["findings"]]
    assert [f for f in findings if f["severity"] in ("medium", "high", "critical")] == []
    statuses = {c["check"]: c["status"] for t in report["targets"] for c in t.get("checks", [])}
    for slug in ("open-relay", "relay-restrictions", "banner-leak", "smtp-smuggling", "chroot-disabled",
                 "tls-cert-invalid", "tls-weak-protocol", "auth-plaintext"):
        assert statuses.get(slug) == "passed", (slug, statuses.get(slug))
