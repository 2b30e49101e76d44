"""`hardener audit` against real Postfix servers with the catalog's misconfigurations.

Two Postfix instances (module-scoped, to keep the suite quick):

- the *gateway lab*: a hardened gateway main.cf (relays only for sink.test, delivered to a real
  smtp-sink; valid certificate from the test CA; TLS >= 1.2), with one extra smtpd listener per
  misconfiguration (master.cf `-o` overrides), so every listener differs from the hardened one in
  exactly one setting and must produce exactly that one finding;
- Debian's stock main.cf (VRFY on, local users, version-free but OS-naming banner).

Every audit runs from untrusted vantage points (127.79.P.x); the mynetworks case adds a vantage
inside a too-wide mynetworks and one declared with --trusted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.audit.conftest import AuditAddresses, checks_found, run_audit_cli, statuses
from tests.fixtures.net import free_ports
from tests.fixtures.postfix import SmtpSink, SmtpSinkFactory

HOSTNAME = "pf.hardener.test"

HARDENED = {
    "myhostname": HOSTNAME,
    "smtpd_banner": "$myhostname ESMTP",
    "mydestination": "",
    "relay_domains": "sink.test",
    "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
    "disable_vrfy_command": "yes",
    "smtpd_helo_required": "yes",
    "smtpd_data_restrictions": "reject_unauth_pipelining",
    "smtpd_forbid_bare_newline": "yes",
    "message_size_limit": "10240000",
    "smtpd_tls_security_level": "may",
    "smtpd_tls_protocols": ">=TLSv1.2",
    "smtpd_tls_mandatory_protocols": ">=TLSv1.2",
    "smtpd_tls_auth_only": "yes",
    "smtpd_peername_lookup": "no",   # no PTR queries for test clients: DNS would leave loopback
}

# listener name -> smtpd -o overrides (each one misconfiguration of the catalog)
CASES: dict[str, dict[str, str]] = {
    "hardened": {},
    # a permit in front of reject_unauth_destination (Postfix refuses a bare "permit" at startup)
    "relay-client-ok": {"smtpd_relay_restrictions":
                        "permit_mynetworks, check_client_access static:OK, reject_unauth_destination"},
    "relay-mynetworks-any": {"mynetworks": "0.0.0.0/0"},
    "banner-version": {"smtpd_banner": "$myhostname ESMTP $mail_name $mail_version (Debian/GNU)"},
    "bare-newline": {"smtpd_forbid_bare_newline": "no"},
    "no-size-limit": {"message_size_limit": "0"},
    "helo-optional": {"smtpd_helo_required": "no"},
    "pipelining": {"smtpd_data_restrictions": ""},
    # the other Postfix defence: disconnect on unauthorized pipelining ("554 5.5.0 ... synchronization")
    "forbid-pipelining": {"smtpd_data_restrictions": "", "smtpd_forbid_unauth_pipelining": "yes"},
    # mynetworks one range too wide: trusts all of 127.78.P.0/24 (see test_mynetworks_...)
    "mynetworks-wide": {"mynetworks": "{inside_net}"},
    # the same, and the auditor's own vantage points may use XCLIENT
    "xclient": {"mynetworks": "{inside_net}", "smtpd_authorized_xclient_hosts": "{outside_net}"},
}

EXPECTED: dict[str, set[str]] = {
    "hardened": set(),
    "relay-client-ok": {"open-relay"},
    # smtpd_forbid_bare_newline_exclusions defaults to $mynetworks: every client is exempt
    "relay-mynetworks-any": {"open-relay", "smtp-smuggling"},
    "banner-version": {"banner-leak"},
    "bare-newline": {"smtp-smuggling"},
    "no-size-limit": {"size-unlimited"},
    "helo-optional": {"helo-not-required"},
    "pipelining": {"pipelining-unauth"},
    "forbid-pipelining": set(),
    "mynetworks-wide": set(),   # from one untrusted vantage outside the range: nothing to see
    "xclient": set(),
}


@dataclass
class Lab:
    address: str
    ports: dict[str, int]
    ca_file: Path
    sink: SmtpSink
    stock_address: str
    stock_port: int

    def target(self, case: str) -> str:
        return f"{self.address}:{self.ports[case]}"


def _service(address: str, port: int, settings: dict[str, str]) -> str:
    opts = " ".join(f"-o {{ {k} = {v} }}" for k, v in settings.items())
    return f"{address}:{port} inet n - n - - smtpd {opts}\n"


@pytest.fixture(scope="module")
def lab(postfix_module_factory, cert_factory, audit_addresses: AuditAddresses):
    sinks = SmtpSinkFactory(audit_addresses)  # type: ignore[arg-type]
    sink = sinks()
    address = audit_addresses.host()
    valid = cert_factory.valid(HOSTNAME)
    assert valid.ca is not None
    ports = dict(zip(CASES, free_ports(address, len(CASES))))
    nets = {"inside_net": audit_addresses.inside_net, "outside_net": audit_addresses.outside_net}
    # the first listener (the fixture's own) is "hardened"; the others get their overrides
    extra = "".join(_service(address, ports[name], {k: v.format(**nets) for k, v in settings.items()})
                    for name, settings in CASES.items() if name != "hardened")
    postfix_module_factory({
        **HARDENED,
        "smtpd_tls_chain_files": str(valid.combined),
        # canary.test is not a relay domain: mail for it leaves only through an open relay
        "transport_maps": (f"inline:{{sink.test=smtp:[{sink.address}]:{sink.port}, "
                           f"canary.test=smtp:[{sink.address}]:{sink.port}}}"),
        "smtp_tls_security_level": "none",
    }, address=address, port=ports["hardened"], extra_services=extra)
    # The host's /etc/postfix/main.cf has Debian's snakeoil TLS lines only when ssl-cert was
    # installed before postfix; pin TLS off so "stock" means the same on every machine.
    stock = postfix_module_factory({"myhostname": HOSTNAME, "smtpd_peername_lookup": "no",
                                    "smtpd_tls_security_level": "none",
                                    "relay_domains": "sink.test",
                                    "transport_maps": f"inline:{{sink.test=smtp:[{sink.address}]:{sink.port}}}"},
                                   address=audit_addresses.host())
    yield Lab(address, ports, valid.ca, sink, stock.address, stock.port)
    sinks.cleanup()


@pytest.fixture(scope="module")
def lab_report(lab: Lab, audit_addresses: AuditAddresses, tmp_path_factory):
    """One audit run over every listener plus the stock Postfix, intrusive, from one untrusted vantage."""
    tmp = tmp_path_factory.mktemp("audit")
    targets = [lab.target(case) for case in CASES] + [f"{lab.stock_address}:{lab.stock_port}"]
    code, report = run_audit_cli([*targets, "--source-address", audit_addresses.outside(),
                                  "--ca-file", str(lab.ca_file), "--intrusive",
                                  "--rcpt", "audit@sink.test", "--timeout", "5",
                                  "--transcript", str(tmp / "transcripts")], tmp)
    return code, report, tmp


@pytest.mark.parametrize("case", list(CASES))
def test_each_misconfiguration_gives_exactly_its_finding(lab: Lab, lab_report, case: str) -> None:
    _code, report, _tmp = lab_report
    target = next(t for t in report["targets"] if t["target"] == lab.target(case))
    assert target["status"] == "complete", statuses(target)
    assert checks_found(target) == EXPECTED[case], [f["evidence"] for f in target["findings"]]
    done = statuses(target)
    assert done.pop("mynetworks-too-broad") == "skipped"   # one vantage point: nothing to compare
    # every other check reached a verdict, and "failed" exactly where a finding is
    assert {slug for slug, status in done.items() if status == "failed"} == EXPECTED[case]
    assert set(done.values()) <= {"passed", "failed"}, done


def test_stock_debian_postfix(lab: Lab, lab_report) -> None:
    """Debian's main.cf: VRFY answers 252 for root and 550 for unknown users (nmap misreads 252)."""
    _code, report, _tmp = lab_report
    target = next(t for t in report["targets"] if t["target"] == f"{lab.stock_address}:{lab.stock_port}")
    found = {f["check"]: f for f in target["findings"]}
    assert set(found) == {"banner-leak", "vrfy-enabled", "user-enumeration", "helo-not-required",
                          "pipelining-unauth", "starttls-missing", "smtp-smuggling"}
    assert "252" in found["vrfy-enabled"]["evidence"] and "550" in found["vrfy-enabled"]["evidence"]
    assert "Debian" in found["banner-leak"]["evidence"]
    assert target["status"] == "complete"


def test_report_shape_and_exit_code(lab: Lab, lab_report) -> None:
    code, report, tmp = lab_report
    assert code == 1  # open-relay is critical, at or above the default --fail-on high
    assert report["schema"] == 1
    relay = next(t for t in report["targets"] if t["target"] == lab.target("relay-client-ok"))
    finding = relay["findings"][0]
    assert finding["control"] == "HRD-RELAY-001" and finding["severity"] == "critical"
    assert "RCPT accepted" in finding["evidence"] and "-> 250" in finding["evidence"]
    assert finding["confirmed"] is False
    transcripts = list((tmp / "transcripts").iterdir())
    assert len(transcripts) == len(CASES) + 1
    assert any("C: RCPT TO:<relaytest@example.net>" in p.read_text() for p in transcripts)


def test_smuggling_messages_went_only_to_rcpt(lab: Lab, lab_report) -> None:
    """Every smuggling test message (and the smuggled remainder) reached the sink, addressed to --rcpt."""
    lab.sink.wait_for_messages(1, timeout=20)
    for path in lab.sink.message_files():
        text = path.read_text(errors="replace")
        assert "audit@sink.test" in text


def test_mynetworks_one_range_too_wide(lab: Lab, audit_addresses: AuditAddresses, tmp_path) -> None:
    """mynetworks covers 127.78.P.0/24 but only one host of it is declared trusted."""
    trusted = audit_addresses.inside()
    too_wide = audit_addresses.inside()
    outside = audit_addresses.outside()
    code, report = run_audit_cli([
        lab.target("mynetworks-wide"),
        "--source-address", outside, "--source-address", trusted, "--source-address", too_wide,
        "--trusted", f"{trusted}/32", "--ca-file", str(lab.ca_file), "--timeout", "5"], tmp_path)
    result = report["targets"][0]
    assert checks_found(result) == {"mynetworks-too-broad"}, result["findings"]
    evidence = result["findings"][0]["evidence"]
    assert evidence.startswith(f"relay accepted from {too_wide}, outside --trusted ({trusted}/32)")
    assert f"refused from {outside}" in evidence
    assert code == 1


def _canaries(sink: SmtpSink) -> int:
    return sum("canary@canary.test" in p.read_text(errors="replace") for p in sink.message_files())


def test_relay_canary_confirms_an_open_relay(lab: Lab, audit_addresses: AuditAddresses,
                                             tmp_path) -> None:
    """--intrusive --relay-canary: one message to the canary, relayed to the real sink."""
    before = _canaries(lab.sink)
    code, report = run_audit_cli([lab.target("relay-client-ok"), "--source-address",
                                  audit_addresses.outside(), "--ca-file", str(lab.ca_file),
                                  "--intrusive", "--relay-canary", "canary@canary.test",
                                  "--timeout", "5"], tmp_path)
    (target,) = report["targets"]
    relay = next(f for f in target["findings"] if f["check"] == "open-relay")
    assert relay["confirmed"] is True and "(confirmed;" in relay["evidence"]
    assert code == 1
    for _ in range(150):  # the canary reaches the sink through Postfix's queue (bounded wait)
        if _canaries(lab.sink) > before:
            break
        time.sleep(0.2)
    assert _canaries(lab.sink) == before + 1


def test_xclient_vantage_without_being_there(lab: Lab, audit_addresses: AuditAddresses,
                                             tmp_path) -> None:
    """--xclient-addr: an address inside the too-wide mynetworks, claimed through XCLIENT."""
    claimed = audit_addresses.inside()
    source = audit_addresses.outside()
    code, report = run_audit_cli([lab.target("xclient"), "--source-address", source,
                                  "--xclient-addr", claimed, "--ca-file", str(lab.ca_file),
                                  "--timeout", "5"], tmp_path)
    (target,) = report["targets"]
    assert checks_found(target) == {"mynetworks-too-broad"}, target["findings"]
    evidence = target["findings"][0]["evidence"]
    assert evidence.startswith(f"relay accepted from XCLIENT ADDR={claimed} via {source}")
    assert code == 1
    # declared trusted, the same relay is expected: no finding
    code, report = run_audit_cli([lab.target("xclient"), "--source-address", source,
                                  "--xclient-addr", claimed, "--trusted", f"{claimed}/32",
                                  "--ca-file", str(lab.ca_file), "--timeout", "5"], tmp_path)
    assert checks_found(report["targets"][0]) == set()
    assert code == 0


def test_trusted_vantage_relaying_is_expected(lab: Lab, tmp_path) -> None:
    """127.0.0.1 is in the lab's mynetworks: declared with --trusted, its relaying is no finding."""
    code, report = run_audit_cli([lab.target("hardened"), "--source-address", "127.0.0.1",
                                  "--trusted", "127.0.0.1/32", "--ca-file", str(lab.ca_file),
                                  "--timeout", "5"], tmp_path)
    (target,) = report["targets"]
    assert "open-relay" not in checks_found(target)
    assert statuses(target)["open-relay"] == "skipped"
    detail = next(c for c in target["checks"] if c["check"] == "open-relay")["detail"]
    assert "16/16 forms accepted" in detail or "forms accepted" in detail
    # undeclared, the same vantage is reported, with a hint to declare it
    code, report = run_audit_cli([lab.target("hardened"), "--source-address", "127.0.0.1",
                                  "--ca-file", str(lab.ca_file), "--timeout", "5"], tmp_path)
    relay = next(f for f in report["targets"][0]["findings"] if f["check"] == "open-relay")
    assert "--trusted" in relay["detail"]
