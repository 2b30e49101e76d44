"""A Postfix running exactly what `hardener render mx-gateway` wrote gives no finding at all.

Only what the test machine needs is set: the host names, the next hop (a real smtp-sink), a
certificate from the test CA, and mynetworks = 127.0.0.1/32 through `--set` (the profile's
127.0.0.0/8 would trust every loopback vantage point, and on this machine every client is on
loopback); the fixture points transport_maps and alias_maps at the rendered files instead of /etc
and turns off client name lookups (they would send DNS queries off this machine).
The audit runs from an untrusted vantage with every check enabled, intrusive ones included.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hardener.cli import main as cli_main
from tests.audit.conftest import AuditAddresses, checks_found, run_audit_cli, statuses
from tests.fixtures.postfix import SmtpSinkFactory

HOSTNAME = "mx.hardener.test"


@pytest.fixture(scope="module")
def rendered_mx(postfix_module_factory, cert_factory, audit_addresses: AuditAddresses,
                tmp_path_factory):
    sinks = SmtpSinkFactory(audit_addresses)  # type: ignore[arg-type]
    sink = sinks()
    cert = cert_factory.valid(HOSTNAME)
    out = tmp_path_factory.mktemp("rendered") / "mx"
    code = cli_main(["render", "mx-gateway", "--out", str(out),
                     "--set", f"myhostname={HOSTNAME}", "--set", "relay_domains=sink.test",
                     "--set", f"internal_nexthop=[{sink.address}]:{sink.port}",
                     "--set", f"smtpd_tls_cert_file={cert.cert_file}",
                     "--set", f"smtpd_tls_key_file={cert.key}",
                     "--set", "mynetworks=127.0.0.1/32"])
    assert code == 0
    instance = postfix_module_factory(
        {"transport_maps": f"texthash:{out}/transport", "alias_maps": f"texthash:{out}/aliases",
         "alias_database": f"texthash:{out}/aliases",
         "smtpd_peername_lookup": "no"},   # no PTR queries for test clients: DNS would leave loopback
        address=audit_addresses.host(),
        main_cf_text=(out / "main.cf").read_text(), master_cf_text=(out / "master.cf").read_text())
    yield instance, cert.ca, sink
    sinks.cleanup()


def test_rendered_mx_gateway_has_no_finding(rendered_mx, audit_addresses: AuditAddresses,
                                            tmp_path: Path) -> None:
    instance, ca_file, sink = rendered_mx
    code, report = run_audit_cli([f"{instance.address}:{instance.port}",
                                  "--source-address", audit_addresses.outside(),
                                  "--source-address", audit_addresses.outside(),
                                  "--ca-file", str(ca_file), "--intrusive",
                                  "--rcpt", "audit@sink.test", "--timeout", "5"], tmp_path)
    (target,) = report["targets"]
    assert checks_found(target) == set(), [f["evidence"] for f in target["findings"]]
    assert target["status"] == "complete"
    assert code == 0
    done = statuses(target)
    # every check ran to a verdict (none skipped for lack of a recipient or vantage)
    assert set(done.values()) == {"passed"}, done
    assert target["banner"] == f"220 {HOSTNAME} ESMTP"


def test_rendered_mx_gateway_default_audit(rendered_mx, audit_addresses: AuditAddresses,
                                           tmp_path: Path) -> None:
    """Without --intrusive/--rcpt: still no finding. Skipped: smuggling (intrusive), mynetworks (one
    vantage) and pipelining, which needs a recipient the gateway accepts to reach DATA (--rcpt)."""
    instance, ca_file, _sink = rendered_mx
    code, report = run_audit_cli([f"{instance.address}:{instance.port}",
                                  "--source-address", audit_addresses.outside(),
                                  "--ca-file", str(ca_file), "--timeout", "5"], tmp_path)
    (target,) = report["targets"]
    assert checks_found(target) == set()
    skipped = {slug for slug, status in statuses(target).items() if status == "skipped"}
    assert skipped == {"smtp-smuggling", "mynetworks-too-broad", "pipelining-unauth"}
    detail = next(c["detail"] for c in target["checks"] if c["check"] == "pipelining-unauth")
    assert "--rcpt" in detail
    assert code == 0
