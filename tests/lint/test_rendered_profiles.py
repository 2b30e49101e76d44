"""Lint never flags what `hardener render` writes: no finding at medium or above on any built-in
profile, rendered by the render library into a temp dir.

The profiles default to Debian's snakeoil certificate, which is self-signed and named after the
machine (lint rightly reports that wherever the file exists), so the test renders them with a
CA-signed test certificate that covers the profiles' host names (*.example.com).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hardener.controls import Severity
from hardener.lint.runner import lint_path
from hardener.report.model import CheckStatus

render_helpers = pytest.importorskip("tests.render.helpers", reason="render library not there yet")


@pytest.mark.parametrize("profile", render_helpers.PROFILES)
def test_rendered_profile_has_no_finding_at_medium_or_above(profile: str, tmp_path: Path,
                                                            cert_dir: Path) -> None:
    out = tmp_path / profile
    render_helpers.render(profile, f"smtpd_tls_cert_file={cert_dir / 'wildcard.pem'}",
                          f"smtpd_tls_key_file={cert_dir / 'wildcard.key'}", out=out)
    result = lint_path(out)
    serious = [f"{f.check} {f.location}: {f.evidence}" for f in result.findings
               if f.effective_severity >= Severity.MEDIUM]
    assert serious == []
    statuses = {c.check: c.status for c in result.checks}
    # the checks that matter for a hardened profile really ran (not skipped)
    for slug in ("open-relay", "relay-restrictions", "banner-leak", "vrfy-enabled", "smtp-smuggling",
                 "tls-cert-invalid", "tls-weak-protocol", "chroot-disabled"):
        assert statuses[slug] is CheckStatus.PASSED, (slug, statuses[slug])


@pytest.mark.parametrize("profile", render_helpers.PROFILES)
def test_rendered_profile_with_default_values(profile: str, tmp_path: Path) -> None:
    """With the profile's own defaults (snakeoil certificate): nothing at medium or above except
    what that certificate itself earns where it exists."""
    out = tmp_path / profile
    render_helpers.render(profile, out=out)
    result = lint_path(out)
    serious = [f for f in result.findings if f.effective_severity >= Severity.MEDIUM
               and f.check != "tls-cert-invalid"]
    assert serious == [], [f.evidence for f in serious]
