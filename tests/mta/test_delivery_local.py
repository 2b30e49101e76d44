"""Routing (transport_maps, relayhost, mydestination), the local agent (aliases, Maildir) and the
error agent."""

from __future__ import annotations

import asyncio
import io
import os

from hardener.mta.delivery.error import ErrorAgent
from hardener.mta.delivery.local import LocalAgent, LocalSettings
from hardener.mta.delivery.result import BOUNCED, DEFERRED, SENT, DeliveryRequest, Destination
from hardener.mta.delivery.routing import Router, RoutingSettings
from tests.mta.back_harness import Harness, run_with

BODY = b"From: a@x.example\nSubject: t\n\nhello\n"


def _req(rcpts, qid="0123456789ABCDEF0"):
    return DeliveryRequest(qid, "alice@x.example", rcpts, lambda: io.BytesIO(BODY), len(BODY), 0.0)


def test_routing_order():
    r = Router(RoutingSettings(
        mydestination=["mx.example.com", "localhost"], relay_domains=["relay.example"],
        relayhost="[10.9.9.9]:587", local_transport="local:mx.example.com",
        transport_map={"example.com": "smtp:[10.1.2.3]:25", ".sub.example.org": "error:no mail",
                       "special@other.example": ":[10.4.4.4]"}))
    assert r.resolve("root@localhost") == Destination("local", "")
    assert r.resolve("root") == Destination("local", "")
    assert r.resolve("u@example.com") == Destination("smtp", "[10.1.2.3]:25")
    assert r.resolve("u@a.sub.example.org") == Destination("error", "no mail")
    assert r.resolve("special@other.example") == Destination("smtp", "[10.4.4.4]")
    assert r.resolve("u@other.example") == Destination("smtp", "[10.9.9.9]:587")
    assert r.resolve("u@relay.example") == Destination("smtp", "[10.9.9.9]:587")
    no_relayhost = Router(RoutingSettings(mydestination=[]))
    assert no_relayhost.resolve("u@Other.Example") == Destination("smtp", "other.example")
    null_client = Router(RoutingSettings(mydestination=[],
                                         local_transport="error:local delivery is disabled"))
    assert null_client.resolve("root") == Destination("error", "local delivery is disabled")


def _local(tmp_path, aliases):
    spool = tmp_path / "spool"
    spool.mkdir(mode=0o700)
    return LocalAgent(LocalSettings(spool_dir=spool, aliases=aliases,
                                    local_domains=lambda d: not d or d == "mx.example",
                                    require_known_user=False, myhostname="mx.example")), spool


def test_alias_to_maildir(tmp_path):
    agent, spool = _local(tmp_path, {"root": ["admin"], "postmaster": ["root"]})
    report = asyncio.run(agent.deliver(Destination("local", ""), _req(["postmaster@mx.example"])))
    assert [r.status for r in report.results] == [SENT]
    files = list((spool / "admin" / "Maildir" / "new").iterdir())
    assert len(files) == 1
    text = files[0].read_text()
    assert text.startswith("Return-Path: <alice@x.example>\nDelivered-To: postmaster@mx.example\n")
    assert text.endswith("hello\n")
    assert (spool / "admin" / "Maildir" / "tmp").is_dir() and not os.listdir(spool / "admin" /
                                                                             "Maildir" / "tmp")


def test_pipe_file_and_include_aliases_are_refused(tmp_path):
    agent, spool = _local(tmp_path, {"cmd": ["|/bin/sh -c 'touch /tmp/pwned'"],
                                     "file": ["/etc/passwd"], "inc": [":include:/etc/x"]})
    report = asyncio.run(agent.deliver(Destination("local", ""),
                                       _req(["cmd@mx.example", "file@mx.example", "inc"])))
    assert [r.status for r in report.results] == [BOUNCED] * 3
    assert "command is not supported" in report.results[0].reply
    assert "file is not supported" in report.results[1].reply
    assert os.listdir(spool) == []


def test_symlinked_mailbox_is_refused(tmp_path):
    agent, spool = _local(tmp_path, {})
    target = tmp_path / "elsewhere"
    target.mkdir()
    os.symlink(target, spool / "mallory")
    report = asyncio.run(agent.deliver(Destination("local", ""), _req(["mallory"])))
    assert report.results[0].status == BOUNCED
    assert os.listdir(target) == []


def test_bad_user_names_never_become_paths(tmp_path):
    agent, spool = _local(tmp_path, {"evil": ["../../etc"]})
    report = asyncio.run(agent.deliver(Destination("local", ""), _req(["evil", "../x"])))
    assert [r.status for r in report.results] == [BOUNCED, BOUNCED]
    assert os.listdir(spool) == []


def test_unknown_user_bounces_when_users_must_exist(tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    agent = LocalAgent(LocalSettings(spool_dir=spool, require_known_user=True))
    report = asyncio.run(agent.deliver(Destination("local", ""), _req(["nosuchuser4711"])))
    assert report.results[0].status == BOUNCED
    assert "unknown user" in report.results[0].reply


def test_error_retry_discard_agents():
    agent = ErrorAgent()
    for transport, status in (("error", BOUNCED), ("retry", DEFERRED), ("discard", SENT)):
        report = asyncio.run(agent.deliver(Destination(transport, "because"), _req(["u@x"])))
        assert report.results[0].status == status
        assert report.results[0].reply == "because"


def test_alias_forwarding_to_a_remote_address_through_the_queue(tmp_path, smtp_sink_factory):
    sink = smtp_sink_factory()
    h = Harness(tmp_path, mydestination=["mx.test.example"],
                aliases={"root": ["admin@remote.example"]},
                transport_map={"remote.example": f"smtp:[{sink.address}]:{sink.port}"})

    async def body():
        await h.submit("cron@test.example", ["root@mx.test.example"])
        assert await h.wait_for(lambda: h.queued() == 0 and sink.message_count() == 1)

    asyncio.run(run_with(h, body))
    text = sink.message_files()[0].read_text()
    assert "X-Rcpt-Args: <admin@remote.example>" in text
    assert "X-Mail-Args: <cron@test.example>" in text
