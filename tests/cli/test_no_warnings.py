"""No library warning reaches a user's terminal: a lint or audit run prints its report and nothing
on stderr. Two layers: hardener's own code does not call deprecated library APIs (naming
`dsa.DSAPublicKey` made cryptography >= 43 print a CryptographyDeprecationWarning on every lint of
a config with a certificate), and the CLI entry point silences whatever a library still says,
unless the user asks with -W or $PYTHONWARNINGS."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import warnings
from pathlib import Path

from cryptography import x509


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}


def _hardener(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hardener", *args], capture_output=True,
                          text=True, timeout=240, env=_env())


def _main_cf(directory: Path, cert, *, hostname: str) -> Path:
    directory.mkdir()
    (directory / "main.cf").write_text(
        f"myhostname = {hostname}\nsmtpd_tls_security_level = may\n"
        f"smtpd_tls_cert_file = {cert.chain}\nsmtpd_tls_key_file = {cert.key}\n")
    return directory


def test_certificate_checks_use_no_deprecated_api(cert_factory) -> None:
    """The lint and audit certificate checks raise no warning on an RSA certificate, even with
    warnings turned into errors (the cause fixed, not only hidden)."""
    from hardener.audit.checks import tls as audit_tls
    from hardener.lint import certs as lint_certs

    files = cert_factory.valid("mx.hardener.test")
    cert = x509.load_pem_x509_certificate(files.cert_file.read_bytes())
    now = cert.not_valid_before_utc + dt.timedelta(days=2)   # inside its validity, any day
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lint_certs.certificate_problems([cert], "mx.hardener.test", now)
        audit_tls.certificate_problems(cert, ["mx.hardener.test"], now)


def test_lint_prints_the_report_and_nothing_else(tmp_path: Path, cert_factory) -> None:
    files = cert_factory.valid("mx.hardener.test")
    proc = _hardener("lint", str(_main_cf(tmp_path / "conf", files, hostname="mx.hardener.test")))
    assert proc.returncode in (0, 1), proc.stderr
    assert "Summary:" in proc.stdout
    assert proc.stderr == ""


def test_audit_prints_the_report_and_nothing_else(postfix_factory, cert_factory) -> None:
    files = cert_factory.valid("mx.hardener.test")
    inst = postfix_factory({"smtpd_banner": "$myhostname ESMTP", "smtpd_peername_lookup": "no",
                            "smtpd_tls_security_level": "may",
                            "smtpd_tls_chain_files": str(files.combined)})
    proc = _hardener("audit", f"{inst.address}:{inst.port}", "--timeout", "5",
                     "--ca-file", str(files.ca))
    assert proc.returncode in (0, 1, 3), proc.stderr
    assert "Summary:" in proc.stdout
    assert proc.stderr == ""


def test_a_library_warning_is_silenced_by_the_cli_unless_asked_for(tmp_path: Path) -> None:
    """A warning a library raises while a command runs stays off stderr; -W default shows it.
    (The warning is raised on purpose from a stand-in module: no library warns on demand.)"""
    (tmp_path / "main.cf").write_text("myhostname = mx.hardener.test\n")
    code = ("import sys, warnings; import hardener.lint.runner as r; real = r.lint_path\n"
            "def noisy(*a, **k):\n"
            "    warnings.warn('library deprecation', DeprecationWarning)\n"
            "    warnings.warn('library says', UserWarning)\n"
            "    return real(*a, **k)\n"
            "r.lint_path = noisy\n"
            "from hardener.cli import main; sys.exit(main(sys.argv[1:]))\n")
    quiet = subprocess.run([sys.executable, "-c", code, "lint", str(tmp_path)], capture_output=True,
                           text=True, timeout=60, env=_env())
    assert quiet.stderr == "" and "Summary:" in quiet.stdout
    loud = subprocess.run([sys.executable, "-W", "default", "-c", code, "lint", str(tmp_path)],
                          capture_output=True, text=True, timeout=60, env=_env())
    assert "UserWarning: library says" in loud.stderr
