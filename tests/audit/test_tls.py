"""TLS checks against a real Postfix: one instance, one smtpd listener per case (master.cf -o).

Each listener differs only in its certificate, its TLS protocols, TLS on/off or SASL AUTH. SASL uses
Cyrus: Postfix advertises the mechanisms of the installed Debian libsasl2-modules plugins without any
authentication daemon, which is all the auth-plaintext check looks at.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from hardener.audit.checks import tls
from hardener.audit.context import AuditContext, AuditOptions, AuditTarget
from hardener.report.model import CheckStatus, TargetResult
from tests.fixtures.net import free_port, free_ports

HOSTNAME = "pf.hardener.test"
TLS_SLUGS = set(tls.SLUGS)


def _service(address: str, port: int, settings: dict[str, str]) -> str:
    opts = " ".join(f"-o {{ {k} = {v} }}" for k, v in settings.items())
    return f"{address}:{port} inet n - n - - smtpd {opts}\n"


@dataclasses.dataclass
class TlsLab:
    address: str
    ports: dict[str, int]
    ca_file: Path


@pytest.fixture(scope="module")
def tls_lab(postfix_module_factory, cert_factory, loopback) -> TlsLab:
    address = loopback.host()
    valid = cert_factory.valid(HOSTNAME)
    weak_protocols = {"smtpd_tls_protocols": ">=TLSv1", "smtpd_tls_mandatory_protocols": ">=TLSv1"}
    cases: dict[str, dict[str, str]] = {
        "weak-self-signed": {**weak_protocols,
                             "smtpd_tls_chain_files": str(cert_factory.self_signed(HOSTNAME).combined)},
        "expired": {"smtpd_tls_chain_files": str(cert_factory.expired(HOSTNAME).combined)},
        "not-yet-valid": {"smtpd_tls_chain_files": str(cert_factory.not_yet_valid(HOSTNAME).combined)},
        "wrong-name": {"smtpd_tls_chain_files": str(cert_factory.wrong_name(HOSTNAME).combined)},
        "weak-key": {"smtpd_tls_chain_files": str(cert_factory.weak_key(HOSTNAME).combined)},
        "valid": {},
        "no-tls": {"smtpd_tls_security_level": "none"},
        "auth-plaintext": {"smtpd_sasl_auth_enable": "yes", "smtpd_tls_auth_only": "no"},
    }
    ports = dict(zip(cases, free_ports(address, len(cases))))
    services = "".join(_service(address, ports[name], settings) for name, settings in cases.items())
    postfix_module_factory({
        "myhostname": HOSTNAME,
        "smtpd_peername_lookup": "no",  # no reverse DNS (the resolver is off-loopback)
        "smtpd_tls_security_level": "may",
        "smtpd_tls_chain_files": str(valid.combined),
        "smtpd_tls_protocols": ">=TLSv1.2",
        "smtpd_tls_mandatory_protocols": ">=TLSv1.2",
        "smtpd_sasl_type": "cyrus",
    }, address=address, extra_services=services)
    assert valid.ca is not None
    return TlsLab(address, ports, valid.ca)


def audit_tls(lab: TlsLab, case: str, *, ca_file: Path | None = None, name: str | None = None) -> TargetResult:
    options = AuditOptions(timeout=5.0, ca_file=ca_file)
    ctx = AuditContext.for_target(AuditTarget(lab.address, lab.ports[case], name=name), options)
    asyncio.run(asyncio.wait_for(tls.run(ctx), 60))
    return ctx.result


def findings(result: TargetResult) -> dict[str, str]:
    return {f.check: f.evidence for f in result.findings}


def statuses(result: TargetResult) -> dict[str, CheckStatus]:
    return {c.check: c.status for c in result.checks if c.check in TLS_SLUGS}


def test_tls10_and_self_signed_are_found(tls_lab):
    result = audit_tls(tls_lab, "weak-self-signed", ca_file=tls_lab.ca_file)
    found = findings(result)
    assert set(found) == {"tls-weak-protocol", "tls-cert-invalid"}
    assert "TLSv1 (" in found["tls-weak-protocol"] and "TLSv1.1 (" in found["tls-weak-protocol"]
    assert found["tls-cert-invalid"].endswith(": self-signed")
    weak = next(c for c in result.checks if c.check == "tls-weak-protocol")
    # SSLv3 is compiled out of Debian's OpenSSL 3: reported as not tested, not as refused
    assert "SSLv3" in weak.detail and "not tested" in weak.detail
    assert result.status == "complete"


def test_valid_chain_from_private_ca_has_no_finding(tls_lab):
    result = audit_tls(tls_lab, "valid", ca_file=tls_lab.ca_file)
    assert findings(result) == {}
    assert statuses(result) == {slug: CheckStatus.PASSED for slug in TLS_SLUGS}


def test_private_ca_without_ca_file_is_untrusted(tls_lab):
    found = findings(audit_tls(tls_lab, "valid"))
    assert set(found) == {"tls-cert-invalid"}
    assert "untrusted chain" in found["tls-cert-invalid"]


@pytest.mark.parametrize("case, expected", [
    ("expired", "expired on "),
    ("not-yet-valid", "not valid before "),
    ("wrong-name", "name mismatch (covers other.invalid, not pf.hardener.test)"),
    ("weak-key", "weak key (RSA 1024 bits < 2048)"),
])
def test_certificate_problem(tls_lab, case, expected):
    found = findings(audit_tls(tls_lab, case, ca_file=tls_lab.ca_file))
    assert set(found) == {"tls-cert-invalid"}, found
    assert expected in found["tls-cert-invalid"]
    assert "untrusted" not in found["tls-cert-invalid"]


def test_name_is_checked_against_the_target_name(tls_lab):
    # the MX name (from --mx) is what a sending MTA checks, not the server's EHLO name
    found = findings(audit_tls(tls_lab, "valid", ca_file=tls_lab.ca_file, name="mx.other.test"))
    assert "not mx.other.test" in found["tls-cert-invalid"]


def test_no_starttls(tls_lab):
    result = audit_tls(tls_lab, "no-tls")
    assert set(findings(result)) == {"starttls-missing"}
    assert statuses(result)["tls-weak-protocol"] is CheckStatus.SKIPPED
    assert statuses(result)["tls-cert-invalid"] is CheckStatus.SKIPPED


def test_auth_before_starttls(tls_lab):
    found = findings(audit_tls(tls_lab, "auth-plaintext", ca_file=tls_lab.ca_file))
    assert set(found) == {"auth-plaintext"}
    assert "AUTH " in found["auth-plaintext"] and " PLAIN" in found["auth-plaintext"]


def test_unreachable_target_is_an_error_not_a_finding(loopback):
    address = loopback.address()
    ctx = AuditContext.for_target(AuditTarget(address, free_port(address)), AuditOptions(timeout=2.0))
    asyncio.run(asyncio.wait_for(tls.run(ctx), 30))
    assert ctx.result.findings == []
    assert set(statuses(ctx.result).values()) == {CheckStatus.ERROR}
    assert ctx.result.status == "incomplete"


def test_unusable_ca_file_is_an_error(tls_lab, tmp_path):
    bad = tmp_path / "not-a-ca.pem"
    bad.write_text("not a certificate\n")
    result = audit_tls(tls_lab, "valid", ca_file=bad)
    assert result.findings == []
    assert statuses(result)["tls-cert-invalid"] is CheckStatus.ERROR
    assert "cannot use --ca-file" in next(c.detail for c in result.checks if c.check == "tls-cert-invalid")


@pytest.mark.parametrize("names, host, expected", [
    (["mx.example.test"], "MX.Example.Test.", True),
    (["*.example.test"], "mx.example.test", True),
    (["*.example.test"], "a.mx.example.test", False),     # wildcard covers one label only
    (["*.example.test"], "example.test", False),
    (["other.test", "127.0.0.5"], "127.0.0.5", True),      # IP address in subjectAltName
    (["other.test"], "mx.example.test", False),
])
def test_name_matching(cert_factory, names, host, expected):
    from cryptography import x509

    files = cert_factory.make(f"names-{abs(hash((tuple(names), host)))}", names)
    cert = x509.load_pem_x509_certificate(files.cert_file.read_bytes())
    assert tls.name_matches(cert, host) is expected


class _StartTlsFault:
    """A fake SMTP server (faults no real MTA here can be made to show): it advertises STARTTLS,
    answers 220, and then either sends plain text instead of a TLS handshake ("garbage") or says
    nothing at all ("silent")."""

    def __init__(self, mode: str) -> None:
        self.mode = mode

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 broken.test ESMTP\r\n")
        try:
            while line := await asyncio.wait_for(reader.readline(), 10):
                verb = line.split(b" ")[0].strip().upper()
                if verb == b"EHLO":
                    writer.write(b"250-broken.test\r\n250 STARTTLS\r\n")
                elif verb == b"STARTTLS":
                    writer.write(b"220 go ahead\r\n")
                    if self.mode == "garbage":
                        writer.write(b"this is not TLS\r\n")
                    await writer.drain()
                    await asyncio.sleep(10 if self.mode == "silent" else 0)
                    break
                else:
                    writer.write(b"221 bye\r\n")
                    break
                await writer.drain()
        except (asyncio.TimeoutError, ConnectionError):
            pass
        writer.close()


@pytest.mark.parametrize("mode", ["garbage", "silent"])
def test_server_that_breaks_after_starttls(loopback, mode):
    """No finding, both handshake checks in error, the target incomplete, no hang past --timeout
    (the silent server would hold each handshake for 10 s; the timeout is 1 s)."""
    address = loopback.address()

    async def scenario() -> TargetResult:
        server = await asyncio.start_server(_StartTlsFault(mode).handle, address, 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            ctx = AuditContext.for_target(AuditTarget(address, port), AuditOptions(timeout=1.0))
            await asyncio.wait_for(tls.run(ctx), 8)
            return ctx.result

    result = asyncio.run(scenario())
    assert result.findings == []
    got = statuses(result)
    assert got["starttls-missing"] is CheckStatus.PASSED
    assert got["tls-cert-invalid"] is CheckStatus.ERROR and got["tls-weak-protocol"] is CheckStatus.ERROR
    assert result.status == "incomplete"


def test_cli_ca_file_and_tls_findings_in_json(tls_lab):
    """End to end through `hardener audit --ca-file`: the TLS verdicts reach the JSON report."""
    import json
    import subprocess
    import sys

    def audit(case: str, *extra: str) -> dict:
        proc = subprocess.run([sys.executable, "-m", "hardener", "audit",
                               f"{tls_lab.address}:{tls_lab.ports[case]}", "--format", "json",
                               "--timeout", "5", *extra], capture_output=True, text=True, timeout=120)
        assert proc.returncode in (0, 1), proc.stderr
        return json.loads(proc.stdout)["targets"][0]

    valid = audit("valid", "--ca-file", str(tls_lab.ca_file))
    assert not [f for f in valid["findings"] if f["check"] in TLS_SLUGS]
    assert {c["check"]: c["status"] for c in valid["checks"] if c["check"] in TLS_SLUGS} == {
        slug: "passed" for slug in TLS_SLUGS}
    weak = audit("weak-self-signed", "--ca-file", str(tls_lab.ca_file))
    by_check = {f["check"]: f for f in weak["findings"]}
    assert by_check["tls-weak-protocol"]["control"] == "HRD-TLS-002"
    assert by_check["tls-cert-invalid"]["severity"] == "medium"
