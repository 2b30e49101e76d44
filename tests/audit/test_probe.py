"""The SMTP probe: reply parsing, and its behaviour against misbehaving peers."""

from __future__ import annotations

import asyncio

import pytest

from hardener.audit.probe import (ConnectRefused, EarlyDisconnect, GarbageReply, Probe, ProbeTimeout,
                                  ReplyFlood, parse_reply_lines)
from tests.audit.conftest import AuditAddresses
from tests.fixtures.net import free_port
from tests.audit.fault_servers import fault_server, flood, garbage, hang_up, long_line, silent


def test_multiline_reply_with_enhanced_code() -> None:
    reply = parse_reply_lines(["250-mx.example.com", "250-PIPELINING", "250 SIZE 10240000"])
    assert reply.code == 250 and reply.lines == ("mx.example.com", "PIPELINING", "SIZE 10240000")
    assert reply.enhanced is None
    reply = parse_reply_lines(["550 5.1.1 <x@y>: Recipient address rejected"])
    assert reply.enhanced == "5.1.1" and reply.permanent and not reply.transient
    assert parse_reply_lines(["454 4.7.1 Relay access denied"]).transient
    assert parse_reply_lines(["252 2.0.0 root"]).enhanced == "2.0.0"
    assert parse_reply_lines(["220"]).lines == ("",)


@pytest.mark.parametrize("lines", [
    ["HTTP/1.1 200 OK"],
    ["250-first", "251 changed code"],
    ["250 done", "250 again"],          # continuation after a final line
    ["250-never ends"],
    ["2500 four digits"],
])
def test_malformed_replies_are_garbage(lines: list[str]) -> None:
    with pytest.raises(GarbageReply):
        parse_reply_lines(lines)


@pytest.mark.parametrize("handler, error", [
    (silent, ProbeTimeout), (hang_up, EarlyDisconnect), (garbage, GarbageReply),
    (flood, ReplyFlood), (long_line, ReplyFlood),
])
@pytest.mark.timeout(30)
def test_probe_errors_are_typed(audit_addresses: AuditAddresses, handler, error) -> None:
    address = audit_addresses.host()
    with fault_server(handler, address) as server:
        with pytest.raises(error):
            asyncio.run(Probe.connect(address, server.port, timeout=1.0))


@pytest.mark.timeout(30)
def test_refused_connection(audit_addresses: AuditAddresses) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectRefused):
        asyncio.run(Probe.connect("127.0.0.1", port, timeout=1.0))


@pytest.mark.timeout(30)
def test_session_against_aiosmtpd_with_source_address(audit_addresses: AuditAddresses) -> None:
    """A real aiosmtpd Controller: greeting, EHLO capabilities, source binding, transcript, QUIT."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Sink

    address = audit_addresses.host()
    source = audit_addresses.outside()
    controller = Controller(Sink(), hostname=address, port=free_port(address))
    controller.start()
    try:
        async def session() -> Probe:
            probe = await Probe.connect(address, controller.port, timeout=5, source_address=source)
            await probe.ehlo("client.example")
            await probe.command("NOOP")
            await probe.quit()
            return probe

        probe = asyncio.run(session())
    finally:
        controller.stop()
    assert probe.greeting is not None and probe.greeting.code == 220
    assert probe.supports("8BITMIME")
    assert probe.writer.get_extra_info("sockname")[0] == source
    text = probe.transcript_text()
    assert f"*: connected to {address}:{controller.port} from {source}" in text
    assert "C: EHLO client.example" in text and "C: QUIT" in text and "S: 221" in text
    assert probe.closed


async def _multiline_greeter(reader, writer) -> None:
    """Legal but uncommon: a multi-line 220 greeting (a fake: Postfix and aiosmtpd greet in one line)."""
    writer.write(b"220-multi.test ESMTP\r\n220-no UCE\r\n220 ready\r\n")
    await writer.drain()
    while line := await reader.readline():
        if line.upper().startswith(b"EHLO"):
            writer.write(b"250-multi.test\r\n250-SIZE 1000\r\n250 ENHANCEDSTATUSCODES\r\n")
        elif line.upper().startswith(b"QUIT"):
            writer.write(b"221 2.0.0 bye\r\n")
            await writer.drain()
            return
        else:
            writer.write(b"502 5.5.2 " + line.strip()[:20] + b" not here\r\n")
        await writer.drain()


@pytest.mark.timeout(30)
def test_multiline_greeting_keeps_the_probe_in_step(audit_addresses: AuditAddresses) -> None:
    address = audit_addresses.host()

    async def session():
        probe = await Probe.connect(address, server.port, timeout=2)
        ehlo = await probe.ehlo("c.example")
        noop = await probe.command("NOOP")
        help_ = await probe.command("HELP")
        await probe.quit()
        return probe, ehlo, noop, help_

    with fault_server(_multiline_greeter, address) as server:
        probe, ehlo, noop, help_ = asyncio.run(session())
    assert probe.greeting is not None and probe.greeting.lines == ("multi.test ESMTP", "no UCE", "ready")
    assert ehlo.code == 250 and probe.esmtp == {"SIZE": "1000", "ENHANCEDSTATUSCODES": ""}
    assert (noop.code, noop.enhanced, noop.text) == (502, "5.5.2", "5.5.2 NOOP not here")
    assert help_.text == "5.5.2 HELP not here"


def test_resolve_host() -> None:
    from hardener.audit.probe import resolve_host

    assert asyncio.run(resolve_host("127.0.0.9", 25, 2)) == ["127.0.0.9"]
    # /etc/hosts only: tests send no DNS query off this machine
    assert "127.0.0.1" in asyncio.run(resolve_host("localhost", 25, 2, "127.0.0.1"))
