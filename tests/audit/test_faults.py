"""Targets that cannot be audited: a finding-free report, status incomplete, exit 3, no hang.

Closed port and full accept queue are real kernel behaviour; the misbehaving servers are fakes
(tests/audit/fault_servers.py), because no real SMTP server speaks garbage or hangs up on demand.
Each test is bounded by pytest-timeout rather than by timing assertions.
"""

from __future__ import annotations

import socket

import pytest

from tests.audit.conftest import AuditAddresses, run_audit_cli, statuses
from tests.audit.fault_servers import (backlog_full_port, fault_server, flood, garbage,
                                       greet_then_hang_up, hang_up, long_line, silent)

TIMEOUT = "1.5"


def _closed_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]   # closed again when the block ends


def _assert_incomplete(code: int, report: dict, reason: str) -> dict:
    assert code == 3
    (target,) = report["targets"]
    assert target["status"] == "incomplete"
    assert target["findings"] == []
    assert reason in target.get("error", "") or reason in str(statuses(target)), target
    assert report["summary"] == {"critical": 0, "high": 0, "medium": 0, "low": 0, "info": 0}
    return target


@pytest.fixture(scope="module")
def server_address(audit_addresses: AuditAddresses) -> str:
    return audit_addresses.host()


@pytest.mark.timeout(30)
def test_unreachable_closed_port(server_address: str, tmp_path) -> None:
    port = _closed_port(server_address)
    code, report = run_audit_cli([f"{server_address}:{port}", "--timeout", TIMEOUT], tmp_path)
    target = _assert_incomplete(code, report, "unreachable")
    assert set(statuses(target).values()) == {"error"}   # every check says it was not run


@pytest.mark.timeout(30)
def test_filtered_no_syn_ack(server_address: str, tmp_path) -> None:
    with backlog_full_port(server_address) as port:
        code, report = run_audit_cli([f"{server_address}:{port}", "--timeout", TIMEOUT], tmp_path)
    _assert_incomplete(code, report, "filtered")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("handler, reason", [
    (silent, "timeout"),
    (hang_up, "early disconnect"),
    (garbage, "garbage"),
    (flood, "reply flood"),
    (long_line, "reply flood"),
])
def test_misbehaving_server(server_address: str, tmp_path, handler, reason: str) -> None:
    with fault_server(handler, server_address) as server:
        code, report = run_audit_cli([f"{server_address}:{server.port}", "--timeout", TIMEOUT],
                                     tmp_path)
    _assert_incomplete(code, report, reason)


@pytest.mark.timeout(60)
def test_disconnect_half_way_marks_checks_not_finished(server_address: str, tmp_path) -> None:
    """Greeting and EHLO work, every later command meets a closed connection."""
    with fault_server(greet_then_hang_up, server_address) as server:
        code, report = run_audit_cli([f"{server_address}:{server.port}", "--timeout", TIMEOUT,
                                      "--format", "json"], tmp_path)
    assert code == 3
    (target,) = report["targets"]
    assert target["status"] == "incomplete"
    assert target["banner"] == "220 fault.test ESMTP"
    assert "error" in statuses(target).values()
    assert all("Traceback" not in c.get("detail", "") for c in target["checks"])


@pytest.mark.timeout(60)
def test_one_bad_target_does_not_spoil_the_others(server_address: str, tmp_path) -> None:
    """A garbage server and a closed port next to each other: both reported, in the given order."""
    port = _closed_port(server_address)
    with fault_server(garbage, server_address) as server:
        code, report = run_audit_cli([f"{server_address}:{server.port}", f"{server_address}:{port}",
                                      "--timeout", TIMEOUT, "--concurrency", "2"], tmp_path)
    assert code == 3
    assert [t["target"] for t in report["targets"]] == [f"{server_address}:{server.port}",
                                                        f"{server_address}:{port}"]
    assert all(t["status"] == "incomplete" and not t["findings"] for t in report["targets"])


def _busy_then_ready(busy_connections: int):
    """A fake that answers 421 to the first connections, then greets and serves EHLO/QUIT."""
    seen = {"n": 0}

    async def handler(reader, writer) -> None:
        seen["n"] += 1
        if seen["n"] <= busy_connections:
            writer.write(b"421 4.7.0 busy.test Error: too many connections\r\n")
            await writer.drain()
            return
        writer.write(b"220 busy.test ESMTP\r\n")
        while line := await reader.readline():
            verb = line.split(b" ", 1)[0].strip().upper()
            writer.write(b"250 busy.test\r\n" if verb == b"EHLO" else b"221 bye\r\n")
            await writer.drain()
            if verb == b"QUIT":
                return

    return handler, seen


@pytest.mark.timeout(30)
def test_421_greeting_is_retried_after_a_delay(server_address: str) -> None:
    import asyncio

    from hardener.audit.context import AuditContext, AuditOptions, AuditTarget

    handler, seen = _busy_then_ready(2)
    with fault_server(handler, server_address) as server:
        options = AuditOptions(timeout=2, retries_421=2, delay_421=0.05)
        ctx = AuditContext.for_target(AuditTarget(server_address, server.port), options)

        async def connect() -> None:
            async with ctx.session() as probe:
                assert probe.greeting is not None and probe.greeting.code == 220

        asyncio.run(connect())
    assert seen["n"] == 3


@pytest.mark.timeout(30)
def test_421_every_time_gives_incomplete(server_address: str) -> None:
    import asyncio

    from hardener.audit.context import AuditOptions, AuditTarget
    from hardener.audit.runner import audit_target

    handler, seen = _busy_then_ready(100)
    with fault_server(handler, server_address) as server:
        options = AuditOptions(timeout=2, retries_421=1, delay_421=0.05)
        result, _ctx = asyncio.run(audit_target(AuditTarget(server_address, server.port), options))
    assert seen["n"] == 2
    assert result.status == "incomplete" and not result.findings
    assert result.error is not None and "421" in result.error


async def _slow_but_steady(reader, writer) -> None:
    """Answers everything, each reply 0.4 s late: never a timeout, but an audit would take long."""
    import asyncio

    await asyncio.sleep(0.4)
    writer.write(b"220 slow.test ESMTP\r\n")
    await writer.drain()
    while line := await reader.readline():
        await asyncio.sleep(0.4)
        writer.write(b"221 bye\r\n" if line.upper().startswith(b"QUIT") else b"250 slow.test\r\n")
        await writer.drain()
        if line.upper().startswith(b"QUIT"):
            return


@pytest.mark.timeout(30)
def test_per_target_deadline_bounds_a_slow_server(server_address: str) -> None:
    import asyncio

    from hardener.audit.context import AuditOptions, AuditTarget
    from hardener.audit.runner import audit_target

    with fault_server(_slow_but_steady, server_address) as server:
        options = AuditOptions(timeout=2, target_deadline=3)
        result, _ctx = asyncio.run(audit_target(AuditTarget(server_address, server.port), options))
    assert result.status == "incomplete" and not result.findings
    assert result.error == "audit did not finish within 3s"
    assert "error" in {c.status.value for c in result.checks}
