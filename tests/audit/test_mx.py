"""--mx resolution against a real DNS server (dnsmasq on loopback)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from hardener.audit.mx import (MxLookupError, parse_resolver, resolve_domain, resolve_mx,
                               resolve_mx_detailed)
from hardener.errors import InputError, TargetError
from tests.audit.conftest import AuditAddresses
from tests.fixtures.net import free_port


def resolve(domain: str, resolver: str | None, timeout: float = 3.0, **kw):
    return asyncio.run(asyncio.wait_for(resolve_mx_detailed(domain, resolver, timeout, **kw), 30))


@pytest.fixture
def dns_server(dnsmasq_factory):
    return dnsmasq_factory(
        mx=[("example.test", "mx2.example.test", 20), ("example.test", "mx1.example.test", 10),
            ("example.test", "mx3.example.test", 30), ("null.test", ".", 0),
            ("broken.test", "nowhere.broken.test", 10)],
        hosts={"mx1.example.test": ["127.0.99.1"], "mx2.example.test": ["127.0.99.2", "::1"],
               "mx3.example.test": ["127.0.99.3"], "implicit.test": ["127.0.99.4"]},
    )


def test_mx_hosts_in_preference_order_with_their_addresses(dns_server):
    res = resolve("example.test", dns_server.resolver, port=2525)
    got = [(t.name, t.host, t.port) for t in res.targets]
    assert got == [("mx1.example.test", "127.0.99.1", 2525), ("mx2.example.test", "127.0.99.2", 2525),
                   ("mx2.example.test", "::1", 2525), ("mx3.example.test", "127.0.99.3", 2525)]
    assert not res.implicit


def test_resolve_mx_returns_the_targets(dns_server):
    targets = asyncio.run(resolve_mx("example.test.", dns_server.resolver, 3.0))
    assert [t.display for t in targets] == [
        "mx1.example.test[127.0.99.1]:25", "mx2.example.test[127.0.99.2]:25",
        "mx2.example.test[::1]:25", "mx3.example.test[127.0.99.3]:25"]


def test_implicit_mx_uses_the_domain_address(dns_server):
    res = resolve("implicit.test", dns_server.resolver)
    assert [(t.name, t.host) for t in res.targets] == [("implicit.test", "127.0.99.4")]
    assert res.implicit and "implicit MX" in res.notes[0]


def test_null_mx_is_a_clear_error(dns_server):
    with pytest.raises(MxLookupError, match=r"null MX \(RFC 7505"):
        resolve("null.test", dns_server.resolver)


def test_nxdomain_is_a_lookup_error_of_that_domain(dns_server):
    """What DNS says about one domain is that target's problem (exit 3), not bad input (exit 2)."""
    with pytest.raises(MxLookupError) as err:
        resolve("nosuch.test", dns_server.resolver)
    assert isinstance(err.value, TargetError) and not isinstance(err.value, InputError)
    assert err.value.one_line().startswith("--mx: domain nosuch.test does not exist (NXDOMAIN")


def test_resolve_domain_returns_the_reason_instead_of_raising(dns_server):
    res = asyncio.run(resolve_domain("NoSuch.test.", dns_server.resolver, 3.0))
    assert res.domain == "NoSuch.test" and res.targets == []
    assert res.error.startswith("domain NoSuch.test does not exist (NXDOMAIN from ")
    with pytest.raises(InputError):
        asyncio.run(resolve_domain("127.0.0.1", dns_server.resolver, 3.0))


def test_mx_host_without_address(dns_server):
    with pytest.raises(MxLookupError, match="no MX host of broken.test has an address"):
        resolve("broken.test", dns_server.resolver)


def test_refusing_resolver_is_a_target_error(dns_server):
    # dnsmasq has no upstream: names outside its local domains are REFUSED
    with pytest.raises(MxLookupError, match="REFUSED"):
        resolve("example.org", dns_server.resolver)


def test_silent_resolver_times_out(loopback):
    # a UDP socket that never answers: the resolver must give up within the timeout
    import socket
    address = loopback.address()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind((address, 0))
        port = silent.getsockname()[1]
        with pytest.raises(MxLookupError, match=r"no answer from .* within 1s"):
            resolve("example.test", f"{address}:{port}", timeout=1.0)


@pytest.mark.parametrize("text, expected", [
    ("127.0.0.5", ("127.0.0.5", 53)), ("127.0.0.5:5353", ("127.0.0.5", 5353)),
    ("[::1]:5353", ("::1", 5353)), ("::1", ("::1", 53)),
])
def test_parse_resolver(text, expected):
    assert parse_resolver(text) == expected


@pytest.mark.parametrize("text", ["dns.example", "127.0.0.1:0", "127.0.0.1:x", "[::1]x", ""])
def test_bad_resolver_is_one_line_input_error(text):
    with pytest.raises(InputError) as err:
        parse_resolver(text)
    assert err.value.one_line().startswith("--resolver: ")


@pytest.mark.parametrize("domain", ["", "127.0.0.1", "a..b"])
def test_bad_domain(domain):
    with pytest.raises(InputError) as err:
        resolve(domain, f"127.0.0.1:{free_port()}")
    assert err.value.one_line().startswith("--mx: ")


def test_audit_mx_end_to_end(dnsmasq_factory, postfix_factory, loopback, cert_factory):
    """`hardener audit --mx example.test --resolver ADDR:PORT` audits both MX hosts, served by one
    Postfix listening on the two addresses dnsmasq gives for mx1 and mx2, in preference order.

    The Postfix certificate names mx1.example.test only: the certificate check, which expects the MX
    host name, passes on mx1 and reports a name mismatch on mx2."""
    mx1, mx2 = loopback.host(), loopback.host()
    port = free_port(mx1)
    cert = cert_factory.valid("mx1.example.test")
    postfix_factory({"smtpd_banner": "$myhostname ESMTP", "smtpd_peername_lookup": "no",
                     "smtpd_tls_security_level": "may", "smtpd_tls_chain_files": str(cert.combined),
                     "smtpd_tls_protocols": ">=TLSv1.2"},
                    address=mx1, port=port, extra_services=f"{mx2}:{port} inet n - n - - smtpd\n")
    dns_server = dnsmasq_factory(mx=[("example.test", "mx2.example.test", 20),
                                     ("example.test", "mx1.example.test", 10)],
                                 hosts={"mx1.example.test": [mx1], "mx2.example.test": [mx2]})
    proc = subprocess.run(
        [sys.executable, "-m", "hardener", "audit", "--mx", "example.test", "--resolver",
         dns_server.resolver, "--port", str(port), "--timeout", "5", "--format", "json",
         "--ca-file", str(cert.ca)],
        capture_output=True, text=True, timeout=240)
    assert proc.returncode in (0, 1), proc.stderr
    report = json.loads(proc.stdout)
    assert [t["target"] for t in report["targets"]] == [f"mx1.example.test[{mx1}]:{port}",
                                                        f"mx2.example.test[{mx2}]:{port}"]
    assert all(t["status"] == "complete" for t in report["targets"])
    cert_findings = [[f["evidence"] for f in t["findings"] if f["check"] == "tls-cert-invalid"]
                     for t in report["targets"]]
    assert cert_findings[0] == []
    assert cert_findings[1] == ["certificate CN=mx1.example.test: name mismatch "
                                "(covers mx1.example.test, not mx2.example.test)"]
    assert "query[MX] example.test" in dns_server.log()


def _audit(*args: str) -> tuple[int, dict, list[str]]:
    proc = subprocess.run([sys.executable, "-m", "hardener", "audit", *args, "--format", "json"],
                          capture_output=True, text=True, timeout=240)
    return proc.returncode, json.loads(proc.stdout), proc.stderr.splitlines()


def test_audit_mx_null_mx_is_an_incomplete_target(dnsmasq_factory):
    dns_server = dnsmasq_factory(mx=[("null.test", ".", 0)])
    code, report, stderr = _audit("--mx", "null.test", "--resolver", dns_server.resolver)
    assert code == 3
    (target,) = report["targets"]
    assert target["target"] == "--mx null.test" and target["status"] == "incomplete"
    assert target["error"] == ("domain null.test publishes a null MX (RFC 7505: it accepts no "
                               "mail); there is no mail server to audit")
    assert {c["status"] for c in target["checks"]} == {"error"} and target["findings"] == []
    assert stderr == []


def test_audit_mx_resolver_failure_exits_3(dnsmasq_factory):
    dns_server = dnsmasq_factory()
    code, report, _ = _audit("--mx", "example.org", "--resolver", dns_server.resolver,
                             "--timeout", "2")
    assert code == 3
    (target,) = report["targets"]
    assert target["error"].startswith("example.org: DNS lookup of example.org MX failed")
    assert "REFUSED" in target["error"]


def test_audit_mx_bad_domain_is_still_bad_input(dnsmasq_factory):
    proc = subprocess.run([sys.executable, "-m", "hardener", "audit", "--mx", "a..b",
                           "--resolver", "127.0.0.1:1"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("hardener: error: --mx: 'a..b' is not a domain name")


def test_one_failing_domain_leaves_every_other_target_reported(
        dnsmasq_factory, postfix_factory, audit_addresses: AuditAddresses):
    """--mx good.test (resolves), --mx nosuch.test (NXDOMAIN), --mx example.org (REFUSED) and a
    plain target: both servers are audited and reported, each failing domain is an incomplete
    target naming the reason, in the order given, and the run exits 3. Before, the first failing
    domain stopped the run with one error line and no report."""
    mx_address, plain_address = audit_addresses.host(), audit_addresses.host()
    port = free_port(mx_address)
    inst = postfix_factory({"smtpd_banner": "$myhostname ESMTP", "smtpd_peername_lookup": "no"},
                           address=mx_address, port=port,
                           extra_services=f"{plain_address}:{port} inet n - n - - smtpd\n")
    dns_server = dnsmasq_factory(mx=[("good.test", "mx.good.test", 10)],
                                 hosts={"mx.good.test": [mx_address]})
    code, report, stderr = _audit(
        f"{plain_address}:{port}", "--mx", "nosuch.test", "--mx", "good.test", "--mx",
        "example.org", "--resolver", dns_server.resolver, "--port", str(inst.port),
        "--source-address", audit_addresses.outside(), "--timeout", "5", "--fail-on", "critical")
    assert code == 3, stderr
    targets = report["targets"]
    assert [t["target"] for t in targets] == [f"{plain_address}:{port}", "--mx nosuch.test",
                                              f"mx.good.test[{mx_address}]:{port}",
                                              "--mx example.org"]
    assert [t["status"] for t in targets] == ["complete", "incomplete", "complete", "incomplete"]
    assert targets[1]["error"].startswith("domain nosuch.test does not exist (NXDOMAIN from")
    assert "REFUSED" in targets[3]["error"]
    assert targets[0]["checks"] and all(c["status"] != "error" for c in targets[0]["checks"])
    assert targets[0]["banner"] and targets[0]["banner"] == targets[2]["banner"]   # one Postfix
    assert "query[MX] nosuch.test" in dns_server.log()
