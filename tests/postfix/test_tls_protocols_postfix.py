"""TLS protocol lists against a real Postfix 3.7: what hardener computes is what Postfix negotiates.

Server side: one Postfix instance, one smtpd per protocol list (master.cf `-o`); a Python client pinned
to one version at a time (the audit's, hardener.audit.tls_probe.protocol_context: ciphers at OpenSSL
security level 0, so that Debian's OpenSSL 3 offers TLS 1.0 and 1.1 at all) does STARTTLS and the
handshake. The set of versions that complete must be
hardener.postfix.tls_protocols.server_protocols() of the list -- and lint, reading the same main.cf
and master.cf, must compute that set for that service. A list Postfix refuses must get 454 to STARTTLS.

Client side: posttls-finger (Postfix's TLS client library, the code smtp uses for smtp_tls_protocols)
with `-p LIST` against four smtpd services pinned to one version each; the versions it completes must
be client_protocols() of the list.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
import subprocess

import pytest

from hardener.audit.tls_probe import protocol_context
from hardener.lint.runner import load_context, service_contexts
from hardener.lint.tls import accepted_protocols, check_starttls, check_weak_protocols
from hardener.postfix.tls_protocols import (
    InvalidProtocolList,
    client_protocols,
    server_protocols,
    weak,
)
from hardener.report.model import CheckStatus
from tests.fixtures.net import free_ports

HOSTNAME = "pf.hardener.test"
VERSIONS = {"TLSv1": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1,
            "TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}
# main.cf's own lists: a value no case expects, so an -o that did not apply shows
BASE_LIST = "TLSv1.1 TLSv1.3"

SERVER_LISTS = [
    "", ">=TLSv1", ">=TLSv1.2", "<=TLSv1.1", ">=TLSv1.1 <=TLSv1.2", ">=TLSv1, <=TLSv1.3",
    "TLSv1.2 TLSv1.3", "TLSv1.2:TLSv1.3", "tlsv1.2,TLSV1.3", "!SSLv2, !SSLv3",
    "!SSLv2 !SSLv3 !TLSv1 !TLSv1.1", "!TLSv1.1", ">=TLSv1 !TLSv1.2", "TLSv1 TLSv1.3",
    ">=TLSv1.2 >=TLSv1", ">=0x0303", "<=302", ">=None", ">=0x0305", ">=abc", ">= TLSv1.2",
    ">=SSLv3", "SSLv3", ">=TLSv1.3 <=TLSv1.2",
    "TLSv9", ">=TLSv9", "!0303", ">=SSLv2",                          # Postfix refuses these
]
# (smtpd_tls_security_level, smtpd_tls_protocols, smtpd_tls_mandatory_protocols)
LEVEL_CASES = [
    ("encrypt", ">=TLSv1", ">=TLSv1.2"),     # encrypt: the mandatory list is in force
    ("encrypt", ">=TLSv1.2", ""),
    ("may", ">=TLSv1.2", ">=TLSv1"),         # may: smtpd_tls_protocols
    ("encrypt", ">=TLSv1.2", "TLSv9"),
]
# service name -> its -o settings, and the protocol list in force there
SERVER_CASES: dict[str, tuple[dict[str, str], str]] = {
    **{f"list {v!r}": ({"smtpd_tls_protocols": v}, v) for v in SERVER_LISTS},
    **{f"{level} {p!r} {m!r}": ({"smtpd_tls_security_level": level, "smtpd_tls_protocols": p,
                                 "smtpd_tls_mandatory_protocols": m}, m if level == "encrypt" else p)
       for level, p, m in LEVEL_CASES},
}
CLIENT_LISTS = ["", ">=TLSv1.2", "<=TLSv1.1", "!TLSv1.2", "TLSv1 TLSv1.3", ">=TLSv1 !TLSv1.1",
                "!TLSv1", "TLSv1.2 >=TLSv1.3", ">=TLSv1.2 >=TLSv1"]


def _handshake(address: str, port: int, version: ssl.TLSVersion) -> str:
    """'ok', 'failed' (handshake), 'refused' (STARTTLS not 220) or 'not-offered'."""
    with smtplib.SMTP(address, port, timeout=10) as smtp:
        smtp.ehlo("client.example")
        if not smtp.has_extn("starttls"):
            return "not-offered"
        code, _ = smtp.docmd("STARTTLS")
        if code != 220:
            return "refused"
        try:
            protocol_context(version).wrap_socket(smtp.sock).close()
        except (ssl.SSLError, OSError):
            return "failed"
        return "ok"


def negotiated(address: str, port: int) -> tuple[str, ...] | str:
    """The versions a real smtpd completes a handshake with, or why STARTTLS is not usable."""
    answers = {name: _handshake(address, port, version) for name, version in VERSIONS.items()}
    blocked = {a for a in answers.values() if a in ("refused", "not-offered")}
    if blocked:
        assert len(blocked) == 1 and len(set(answers.values())) == 1, answers
        return blocked.pop()
    return tuple(name for name, answer in answers.items() if answer == "ok")


def _service(address: str, port: int, settings: dict[str, str]) -> str:
    return f"{address}:{port} inet n - n - - smtpd " + " ".join(
        f"-o {{ {k} = {v} }}" for k, v in settings.items()) + "\n"


@pytest.fixture(scope="module")
def lab(postfix_module_factory, cert_factory, loopback):
    address = loopback.host()
    cases = {name: settings for name, (settings, _) in SERVER_CASES.items()}
    for version in VERSIONS:   # the servers posttls-finger talks to: one version each
        cases[f"only {version}"] = {"smtpd_tls_protocols": f">={version} <={version}",
                                    "tls_medium_cipherlist": "DEFAULT:@SECLEVEL=0"}
    ports = dict(zip(cases, free_ports(address, len(cases))))
    inst = postfix_module_factory({
        "myhostname": HOSTNAME,
        "smtpd_tls_security_level": "may",
        "smtpd_tls_chain_files": str(cert_factory.valid(HOSTNAME).combined),
        "smtpd_tls_protocols": BASE_LIST,
        "smtpd_tls_mandatory_protocols": BASE_LIST,
    }, address=address, extra_services="".join(
        _service(address, ports[name], settings) for name, settings in cases.items()))
    contexts = {getattr(service, "name", ""): sctx
                for service, sctx in service_contexts(load_context(inst.config_dir))
                if service is not None}
    lint = {name: contexts[f"{address}:{ports[name]}"] for name in cases}
    return address, ports, lint


def _expected(value: str) -> tuple[str, ...] | str:
    try:
        return server_protocols(value)
    except InvalidProtocolList:
        return "refused"


@pytest.mark.parametrize("case", SERVER_CASES)
def test_server_negotiates_what_is_computed(lab, case: str) -> None:
    address, ports, lint = lab
    in_force = SERVER_CASES[case][1]
    real = negotiated(address, ports[case])
    assert real == _expected(in_force)
    # lint, reading the instance's own main.cf + master.cf, computes the same set for that service
    try:
        assert accepted_protocols(lint[case]) == real
    except InvalidProtocolList:
        assert real == "refused"
    # and its verdicts follow: tls-weak-protocol exactly when a weak version negotiates,
    # starttls-missing when STARTTLS is refused or no version completes a handshake
    usable = isinstance(real, tuple) and bool(real)
    assert bool(check_starttls(lint[case])) == (not usable)
    assert bool(check_weak_protocols(lint[case])) == (usable and bool(set(weak(real))))


@pytest.mark.parametrize("value", CLIENT_LISTS)
def test_postfix_client_offers_what_is_computed(lab, value: str) -> None:
    address, ports, _ = lab
    completed = []
    for version in VERSIONS:
        server = f"[{address}]:{ports[f'only {version}']}"
        out = subprocess.run(
            ["posttls-finger", "-c", "-l", "encrypt", "-t", "10", "-T", "10", "-p", value,
             "-o", "tls_medium_cipherlist=DEFAULT:@SECLEVEL=0", server],
            capture_output=True, text=True, timeout=60, check=False)
        if "TLS connection established" in out.stdout + out.stderr:
            completed.append(version)
    assert tuple(completed) == client_protocols(value)


def _audit(address: str, port: int):
    from hardener.audit.checks import tls
    from hardener.audit.context import AuditContext, AuditOptions, AuditTarget

    ctx = AuditContext.for_target(AuditTarget(address, port), AuditOptions(timeout=5.0))
    asyncio.run(asyncio.wait_for(tls.run(ctx), 90))
    return ctx.result


def _audit_accepted(detail: str) -> tuple[str, ...]:
    for part in detail.split("; "):
        if part.startswith("accepted: "):
            return tuple(part.removeprefix("accepted: ").split(", "))
    return ()


@pytest.mark.parametrize("case", SERVER_CASES)
def test_audit_and_lint_agree(lab, case: str) -> None:
    """Both vantages, same smtpd: the same accepted set and the same verdicts."""
    address, ports, lint = lab
    result = _audit(address, ports[case])
    status = {c.check: c.status for c in result.checks}
    detail = {c.check: c.detail for c in result.checks}
    try:
        lint_set: tuple[str, ...] | None = accepted_protocols(lint[case])
    except InvalidProtocolList:
        lint_set = None
    lint_missing = bool(check_starttls(lint[case]))
    lint_weak = bool(check_weak_protocols(lint[case]))
    if lint_set == ():
        # The documented exception: STARTTLS is answered 220 but no version can complete. Lint
        # knows from main.cf (starttls-missing); the network vantage cannot tell such a server
        # from one that breaks after 220 (an alert or a reset, racing), so it records errors.
        assert lint_missing
        assert status["tls-weak-protocol"] is CheckStatus.ERROR
        assert status["tls-cert-invalid"] is CheckStatus.ERROR
        return
    assert (status["starttls-missing"] is CheckStatus.FAILED) == lint_missing, detail
    assert (status["tls-weak-protocol"] is CheckStatus.FAILED) == lint_weak, detail
    if not lint_missing:
        assert _audit_accepted(detail["tls-weak-protocol"]) == lint_set

