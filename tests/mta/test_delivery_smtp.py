"""The smtp delivery agent against real servers on loopback: smtp-sink, aiosmtpd with STARTTLS,
dnsmasq for MX lookups."""

from __future__ import annotations

import asyncio
import io
import re
import ssl

import pytest
from aiosmtpd.controller import Controller

from hardener.mta.delivery.nexthop import NextHopResolver, parse_nexthop
from hardener.mta.delivery.result import (BOUNCED, DEFERRED, SENT, DeliveryRequest,
                                          Destination)
from hardener.mta.delivery.smtp import SmtpAgent, SmtpSettings
from hardener.mta.delivery.smtp_client import dot_stuff_lines

BODY = b"From: a@x.example\nSubject: t\n\n.leading dot\nline\n"


def _request(recipients: list[str], body: bytes = BODY, qid: str = "0123456789ABCDEF0"):
    return DeliveryRequest(qid, "alice@test.example", recipients, lambda: io.BytesIO(body),
                           len(body), 0.0)


class _Collector:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes, bool]] = []

    async def handle_DATA(self, server, session, envelope):
        tls = session.ssl is not None
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content, tls))
        return "250 2.0.0 Ok: queued"


@pytest.fixture
def tls_server(loopback, cert_factory):
    """aiosmtpd on loopback offering STARTTLS with a self-signed certificate."""
    from tests.fixtures.net import free_port

    cert = cert_factory.self_signed("mx.remote.example")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert.chain, cert.key)
    handler = _Collector()
    addr = loopback.address()
    controller = Controller(handler, hostname=addr, port=free_port(addr), tls_context=ctx)
    controller.start()
    yield controller, handler
    controller.stop()


@pytest.fixture
def plain_server(loopback):
    from tests.fixtures.net import free_port

    handler = _Collector()
    addr = loopback.address()
    controller = Controller(handler, hostname=addr, port=free_port(addr))
    controller.start()
    yield controller, handler
    controller.stop()


def _deliver(settings: SmtpSettings, nexthop: str, req, resolver=None):
    async def go():
        agent = SmtpAgent(settings, resolver or NextHopResolver(nameservers=["127.0.0.1"]))
        try:
            return await agent.deliver(Destination("smtp", nexthop), req)
        finally:
            await agent.close()
    return asyncio.run(go())


def test_encrypt_uses_starttls(tls_server):
    controller, handler = tls_server
    report = _deliver(SmtpSettings(tls_security_level="encrypt"),
                      f"[{controller.hostname}]:{controller.port}", _request(["b@remote.example"]))
    assert [r.status for r in report.results] == [SENT]
    assert handler.messages[0][3] is True  # arrived over TLS
    assert b"\r\n..leading dot" not in handler.messages[0][2]  # dot-stuffing undone by the server
    assert b".leading dot" in handler.messages[0][2]


def test_encrypt_without_starttls_defers_and_sends_nothing(plain_server):
    controller, handler = plain_server
    report = _deliver(SmtpSettings(tls_security_level="encrypt"),
                      f"[{controller.hostname}]:{controller.port}", _request(["b@remote.example"]))
    assert [r.status for r in report.results] == [DEFERRED]
    assert "TLS is required, but was not offered" in report.results[0].reply
    assert report.results[0].dsn == "4.7.4"
    assert handler.messages == []


def test_may_uses_tls_when_offered_and_plain_otherwise(tls_server, plain_server):
    for (controller, handler), want_tls in ((tls_server, True), (plain_server, False)):
        report = _deliver(SmtpSettings(tls_security_level="may"),
                          f"[{controller.hostname}]:{controller.port}", _request(["b@r.example"]))
        assert [r.status for r in report.results] == [SENT]
        assert handler.messages[-1][3] is want_tls


def test_per_recipient_results(smtp_sink_factory):
    sink = smtp_sink_factory(hard_reject="RCPT")
    report = _deliver(SmtpSettings(), f"[{sink.address}]:{sink.port}", _request(["a@r.example"]))
    assert report.results[0].status == BOUNCED
    assert report.results[0].reply.startswith(f"host {sink.address}[{sink.address}]:{sink.port} said: 5")
    soft = smtp_sink_factory(soft_reject="RCPT")
    report = _deliver(SmtpSettings(), f"[{soft.address}]:{soft.port}", _request(["a@r.example"]))
    assert report.results[0].status == DEFERRED and not report.hop_dead


def test_unreachable_hop_is_dead(loopback):
    from tests.fixtures.net import free_port

    addr = loopback.address()
    report = _deliver(SmtpSettings(), f"[{addr}]:{free_port(addr)}", _request(["a@r.example"]))
    assert report.results[0].status == DEFERRED
    assert report.hop_dead
    assert "Connection refused" in report.results[0].reply


def test_connection_is_reused_for_the_next_message(plain_server):
    controller, handler = plain_server
    sessions = []

    async def go():
        agent = SmtpAgent(SmtpSettings(cache_time_limit=5))
        dest = Destination("smtp", f"[{controller.hostname}]:{controller.port}")
        for i in range(3):
            report = await agent.deliver(dest, _request([f"r{i}@x.example"]))
            assert report.results[0].status == SENT
            sessions.append(report.conn_setup)
        await agent.close()

    asyncio.run(go())
    assert len(handler.messages) == 3
    assert sessions[1] == 0.0 and sessions[2] == 0.0  # no new connection setup


def test_mx_lookup_through_dns(dnsmasq_factory, smtp_sink_factory):
    sink = smtp_sink_factory()
    dns = dnsmasq_factory(mx=[("mail.test", "mx1.mail.test", 10)],
                          hosts={"mx1.mail.test": [sink.address]}, local_domains=["test"])
    resolver = NextHopResolver(nameservers=[dns.address], dns_port=dns.port)
    report = _deliver(SmtpSettings(), f"mail.test:{sink.port}", _request(["u@mail.test"]),
                      resolver)
    assert report.results[0].status == SENT
    assert report.results[0].relay == f"mx1.mail.test[{sink.address}]:{sink.port}"
    missing = _deliver(SmtpSettings(), "nosuch.test", _request(["u@nosuch.test"]), resolver)
    assert missing.results[0].status == BOUNCED and missing.results[0].dsn == "5.4.4"


def test_null_mx_bounces(dnsmasq_factory):
    dns = dnsmasq_factory(mx=[("nomail.test", ".", 0)], local_domains=["test"])
    resolver = NextHopResolver(nameservers=[dns.address], dns_port=dns.port)
    report = _deliver(SmtpSettings(), "nomail.test", _request(["u@nomail.test"]), resolver)
    assert report.results[0].status == BOUNCED


def test_parse_nexthop_forms():
    assert parse_nexthop("[10.1.2.3]:2525") == ("10.1.2.3", 2525, False)
    assert parse_nexthop("example.com") == ("example.com", 25, True)
    assert parse_nexthop("example.com:587") == ("example.com", 587, True)
    assert parse_nexthop("[mx.example.com]") == ("mx.example.com", 25, False)
    with pytest.raises(ValueError):
        parse_nexthop("[10.1.2.3:25")
    with pytest.raises(ValueError):
        parse_nexthop("[10.1.2.3]:x")


def test_dot_stuffing_and_crlf():
    data = b"a\n.b\n..c\nno newline at end"
    out = b"".join(dot_stuff_lines(io.BytesIO(data)))
    assert out == b"a\r\n..b\r\n...c\r\nno newline at end\r\n"


def test_dot_stuffing_of_a_large_message_matches_the_small_path():
    line = b".dot first\nplain line\r\n"
    big = line * 20000  # > 256 KiB: the streaming path
    out = b"".join(dot_stuff_lines(io.BytesIO(big)))
    assert out == b"..dot first\r\nplain line\r\n" * 20000


# -- addresses on the wire: RFC 5321 quoting, no parameter injection (issue 7) --------------------

INJECTION = "x@evil.example> NOTIFY=SUCCESS ORCPT=rfc822;y@example.net"


def _sink_args(sink) -> list[str]:
    """The X-Mail-Args / X-Rcpt-Args lines smtp-sink recorded (what it read after FROM: / TO:)."""
    [dump] = sink.message_files()
    return re.findall(r"^X-(?:Mail|Rcpt)-Args: .*$", dump.read_text(errors="replace"), re.M)


def test_quoted_local_parts_reach_the_next_hop_quoted(smtp_sink_factory):
    sink = smtp_sink_factory()
    req = DeliveryRequest("0123456789ABCDEF0", "a b@example.org",
                          [INJECTION, 'q"b\\s@example.net', "@example.net", "plain@example.net",
                           "a\nb@example.net", "j\u00f6rg@example.net"],
                          lambda: io.BytesIO(BODY), len(BODY), 0.0)
    report = _deliver(SmtpSettings(), f"[{sink.address}]:{sink.port}", req)
    assert sink.wait_for_messages(1, timeout=10) == 1
    assert _sink_args(sink) == [
        'X-Mail-Args: <"a b"@example.org>',
        'X-Rcpt-Args: <"x@evil.example> NOTIFY=SUCCESS ORCPT=rfc822;y"@example.net>',
        'X-Rcpt-Args: <"q\\"b\\\\s"@example.net>',
        'X-Rcpt-Args: <""@example.net>',
        "X-Rcpt-Args: <plain@example.net>"]
    results = [(r.status, r.dsn) for r in report.results]
    # a newline has no RFC 5321 form; smtp-sink does not offer SMTPUTF8 (RFC 6531: do not send)
    assert results == [(SENT, "2.0.0")] * 4 + [(BOUNCED, "5.1.3"), (BOUNCED, "5.6.7")]
    assert report.results[5].reply.startswith("SMTPUTF8 is required, but was not offered by host")


def test_smtputf8_is_requested_when_offered_and_needed(loopback):
    from tests.fixtures.net import free_port

    class Recorder:
        def __init__(self) -> None:
            self.seen: list[tuple[str, list[str], list[str]]] = []

        async def handle_DATA(self, server, session, envelope):
            self.seen.append((envelope.mail_from, list(envelope.mail_options),
                              list(envelope.rcpt_tos)))
            return "250 2.0.0 Ok"

    handler = Recorder()
    addr = loopback.address()
    controller = Controller(handler, hostname=addr, port=free_port(addr), enable_SMTPUTF8=True)
    controller.start()
    try:
        nexthop = f"[{addr}]:{controller.port}"
        plain = _deliver(SmtpSettings(), nexthop, _request(["b@remote.example"]))
        utf8 = _deliver(SmtpSettings(), nexthop, _request(["j\u00f6rg@b\u00fccher.example"]))
    finally:
        controller.stop()
    assert [r.status for r in plain.results + utf8.results] == [SENT, SENT]
    assert handler.seen[0][1] == ["SIZE=" + str(len(BODY))]
    assert "SMTPUTF8" in handler.seen[1][1]
    assert handler.seen[1][2] == ["j\u00f6rg@b\u00fccher.example"]


def test_an_unrepresentable_sender_sends_nothing(plain_server):
    controller, handler = plain_server
    req = DeliveryRequest("0123456789ABCDEF0", "a\rb@example.org", ["c@remote.example"],
                          lambda: io.BytesIO(BODY), len(BODY), 0.0)
    report = _deliver(SmtpSettings(), f"[{controller.hostname}]:{controller.port}", req)
    assert [(r.status, r.dsn) for r in report.results] == [(BOUNCED, "5.1.7")]
    assert handler.messages == []
