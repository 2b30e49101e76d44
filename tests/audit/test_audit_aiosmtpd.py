"""`hardener audit` against a plain `python -m aiosmtpd -n` (aiosmtpd's default handler).

aiosmtpd accepts every recipient and has no size limit, no STARTTLS and no pipelining checks, and
names itself in the greeting ("Python SMTP 1.4.x"). It answers VRFY with 252 for every address:
VRFY is answered, so vrfy-enabled is reported (as lint reports it for a main.cf that leaves VRFY on),
but the replies tell no user apart, so user-enumeration is not.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.audit.conftest import AuditAddresses, checks_found, run_audit_cli, statuses
from tests.fixtures.net import free_port, wait_for_port


@pytest.fixture(scope="module")
def aiosmtpd_server(audit_addresses: AuditAddresses) -> Iterator[str]:
    address = audit_addresses.host()
    port = free_port(address)
    proc = subprocess.Popen([sys.executable, "-m", "aiosmtpd", "-n", "-l", f"{address}:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(address, port)
        yield f"{address}:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def test_aiosmtpd_findings(aiosmtpd_server: str, audit_addresses: AuditAddresses, tmp_path) -> None:
    code, report = run_audit_cli([aiosmtpd_server, "--source-address", audit_addresses.outside(),
                                  "--timeout", "5"], tmp_path)
    (target,) = report["targets"]
    found = {f["check"]: f for f in target["findings"]}
    assert set(found) == {"open-relay", "banner-leak", "starttls-missing", "pipelining-unauth",
                          "size-unlimited", "vrfy-enabled"}
    assert "Python SMTP" in found["banner-leak"]["evidence"]
    relay = found["open-relay"]
    assert relay["confirmed"] is False and "RCPT accepted" in relay["evidence"]
    assert "catch-all" in relay["detail"]   # it accepts everything: say a sink looks the same
    assert "252" in found["vrfy-enabled"]["evidence"]     # answered, though alike for everyone
    assert statuses(target)["user-enumeration"] == "passed"   # 252 for everyone tells no one apart
    assert statuses(target)["expn-enabled"] == "passed"       # aiosmtpd: 502 not implemented
    assert target["status"] == "complete"
    assert code == 1


def test_baseline_end_to_end(aiosmtpd_server: str, audit_addresses: AuditAddresses, tmp_path,
                             capsys) -> None:
    baseline = tmp_path / "baseline.yaml"
    host = aiosmtpd_server.rsplit(":", 1)[0]
    baseline.write_text(
        f"- check: banner-leak\n  target: {aiosmtpd_server}\n  reason: test server\n"
        f"  expires: 2999-12-31\n"
        f"- control: HRD-RELAY-001\n  target: {host}\n  reason: was a lab sink\n"
        f"  expires: 2000-01-01\n")
    code, report = run_audit_cli([aiosmtpd_server, "--source-address", audit_addresses.outside(),
                                  "--timeout", "5", "--baseline", str(baseline)], tmp_path)
    (target,) = report["targets"]
    assert "banner-leak" not in checks_found(target)
    assert [(s["check"], s["reason"]) for s in target["suppressed"]] == [("banner-leak", "test server")]
    relay = next(f for f in target["findings"] if f["check"] == "open-relay")
    assert "baseline suppression expired on 2000-01-01" in relay["detail"]
    err = capsys.readouterr().err
    assert f"hardener: note: {baseline}:5: suppression of HRD-RELAY-001 on {host} expired" in err
    assert code == 1
