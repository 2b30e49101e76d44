"""`hardener audit` against a plain `python -m aiosmtpd -n` (aiosmtpd's default handler).

aiosmtpd accepts every recipient and has no size limit, no STARTTLS and no pipelining checks, and
names itself in the greeting ("Python SMTP 1.4.x"). It answers VRFY with 252 for every address,
which confirms nothing, so vrfy-enabled must *not* be reported.
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
                          "size-unlimited"}
    assert "Python SMTP" in found["banner-leak"]["evidence"]
    relay = found["open-relay"]
    assert relay["confirmed"] is False and "RCPT accepted" in relay["evidence"]
    assert "catch-all" in relay["detail"]   # it accepts everything: say a sink looks the same
    assert statuses(target)["vrfy-enabled"] == "passed"   # 252 for everyone confirms nothing
    assert target["status"] == "complete"
    assert code == 1
