"""qmgr scheduling against real next hops (smtp-sink, an asyncio server that hangs up) on loopback."""

from __future__ import annotations

import asyncio
import json

from hardener.mta.qmgr.retry import RetryPolicy
from hardener.mta.queue.state import QueueState
from tests.mta.back_harness import Harness, run_with


def test_relays_every_message_once_to_the_relayhost(tmp_path, smtp_sink_factory):
    sink = smtp_sink_factory()
    h = Harness(tmp_path, relayhost=f"[{sink.address}]:{sink.port}")

    async def body():
        for i in range(60):
            await h.submit("alice@test.example", [f"r{i}@remote.example"])
        assert await h.wait_for(lambda: h.queued() == 0)

    asyncio.run(run_with(h, body))
    assert sink.wait_for_messages(60, timeout=10) == 60
    rcpts = sorted(f.read_text().split("X-Rcpt-Args: ")[1].split("\n")[0]
                   for f in sink.message_files())
    assert rcpts == sorted(f"<r{i}@remote.example>" for i in range(60))
    assert h.qmgr.delivered == 60


def test_recovery_moves_active_back_to_incoming(tmp_path):
    h = Harness(tmp_path, relayhost="[127.0.0.1]:9")

    async def body():
        qid = await h.submit("a@test.example", ["b@remote.example"])
        h.layout.move(qid, "incoming", "active")
        return qid

    qid = asyncio.run(body())
    assert h.qmgr.recover() == 1
    assert h.layout.list("incoming") == [qid]
    h.cleanup.close()


def test_dead_destination_defers_without_a_connection_each(tmp_path, loopback):
    """A next hop that hangs up at once: at most `concurrency` connections for 40 messages."""
    addr = loopback.address()
    connections = 0

    async def body():
        async def hang_up(reader, writer):
            nonlocal connections
            connections += 1
            writer.close()

        server = await asyncio.start_server(hang_up, addr, 0)
        port = server.sockets[0].getsockname()[1]
        h = Harness(tmp_path, relayhost=f"[{addr}]:{port}", concurrency=3,
                    retry=RetryPolicy(60, 120, 60, 3600, 3600))

        async def inner():
            for i in range(40):
                await h.submit("alice@test.example", [f"r{i}@remote.example"])
            assert await h.wait_for(lambda: h.count("deferred") == 40)

        await run_with(h, inner)
        server.close()
        state = QueueState(h.layout.dir("defer"))
        for qid in h.layout.list("deferred"):
            st = state.load(qid)
            assert st.attempts == 1
            assert "connect" in st.last_reason or "lost connection" in st.last_reason
            assert 59 <= st.next_attempt - st.last_attempt <= 61

    asyncio.run(body())
    assert 1 <= connections <= 3


def test_hop_down_then_back_everything_delivered(tmp_path, loopback, smtp_sink_factory):
    """Nothing listens at first: mail is deferred, retried with backoff, delivered when it's back."""
    from tests.fixtures.net import free_port

    addr = loopback.host()
    port = free_port(addr)
    h = Harness(tmp_path, relayhost=f"[{addr}]:{port}", retry=RetryPolicy(1, 2, 1, 3600, 3600))
    sink_holder = []

    async def body():
        for i in range(20):
            await h.submit("alice@test.example", [f"r{i}@remote.example"])
        assert await h.wait_for(lambda: h.count("deferred") == 20)
        # Wait for a second attempt: backoff doubles (1s, then 2s).
        state = QueueState(h.layout.dir("defer"))
        assert await h.wait_for(
            lambda: all(state.load(q).attempts >= 2 for q in h.layout.list("deferred"))
            and h.count("deferred") == 20, timeout=20)
        delays = {state.load(q).delay for q in h.layout.list("deferred")}
        assert delays <= {2.0}
        sink_holder.append(await asyncio.to_thread(smtp_sink_factory, addr, port))
        assert await h.wait_for(lambda: h.queued() == 0, timeout=30)

    asyncio.run(run_with(h, body))
    assert sink_holder[0].wait_for_messages(20, timeout=10) == 20
    assert h.layout.list("defer") == []


def _returned_to_sender(h, home) -> str:
    """Submit alice -> bob@remote.example, run qmgr until the queue is empty, return the one
    message that came back to alice's home sink (the DSN)."""

    async def body():
        await h.submit("alice@sender.example", ["bob@remote.example"])
        assert await h.wait_for(lambda: h.queued() == 0)

    asyncio.run(run_with(h, body))
    assert home.wait_for_messages(1, timeout=10) == 1
    return home.message_files()[0].read_text()


def test_5xx_bounces_to_sender_with_a_dsn(tmp_path, smtp_sink_factory):
    rejecting = smtp_sink_factory(hard_reject="RCPT")
    home = smtp_sink_factory()
    h = Harness(tmp_path, transport_map={
        "remote.example": f"smtp:[{rejecting.address}]:{rejecting.port}",
        "sender.example": f"smtp:[{home.address}]:{home.port}"})

    dsn = _returned_to_sender(h, home)
    assert "X-Mail-Args: <>" in dsn
    assert "X-Rcpt-Args: <alice@sender.example>" in dsn
    assert "multipart/report; report-type=delivery-status" in dsn
    assert "Content-Type: message/delivery-status" in dsn
    assert "Final-Recipient: rfc822; bob@remote.example" in dsn
    assert "Action: failed" in dsn and "Status: 5." in dsn
    assert "Content-Type: text/rfc822-headers" in dsn
    assert "Message-Id: <m@test>" in dsn  # the original headers


def test_no_bounce_for_null_sender_or_a_bounce(tmp_path, smtp_sink_factory):
    rejecting = smtp_sink_factory(hard_reject="RCPT")
    home = smtp_sink_factory()
    h = Harness(tmp_path, transport_map={
        "remote.example": f"smtp:[{rejecting.address}]:{rejecting.port}",
        "sender.example": f"smtp:[{home.address}]:{home.port}"})

    async def body():
        await h.submit("", ["bob@remote.example"])
        await h.submit("alice@sender.example", ["bob@remote.example"], flags=("bounce",))
        assert await h.wait_for(lambda: h.queued() == 0)

    asyncio.run(run_with(h, body))
    assert home.wait_for_messages(1, timeout=2) == 0


def test_expired_message_is_returned_to_sender(tmp_path, loopback, smtp_sink_factory):
    from tests.fixtures.net import free_port

    home = smtp_sink_factory()
    addr = loopback.address()
    h = Harness(tmp_path, retry=RetryPolicy(1, 1, 1, 0, 0), transport_map={
        "remote.example": f"smtp:[{addr}]:{free_port(addr)}",
        "sender.example": f"smtp:[{home.address}]:{home.port}"})

    assert "Status: 4.4.7" in _returned_to_sender(h, home)


def test_corrupt_queue_file_goes_to_corrupt(tmp_path):
    h = Harness(tmp_path, relayhost="[127.0.0.1]:9")
    bad = h.layout.dir("incoming") / "0123456789ABCDEF0"
    bad.write_bytes(b"this is not a queue file\n\nhello\n")

    async def body():
        assert await h.wait_for(lambda: h.count("corrupt") == 1, timeout=10)

    asyncio.run(run_with(h, body))
    assert h.count("incoming") == 0 and h.count("active") == 0


def test_error_transport_bounces_with_its_reason(tmp_path, smtp_sink_factory):
    home = smtp_sink_factory()
    h = Harness(tmp_path, transport_map={
        "remote.example": "error:mail to remote.example is disabled",
        "sender.example": f"smtp:[{home.address}]:{home.port}"})

    assert "mail to remote.example is disabled" in _returned_to_sender(h, home)


def test_state_sidecar_is_json(tmp_path):
    from hardener.mta.queue.state import MessageState, RecipientState

    state = QueueState(tmp_path)
    st = MessageState(attempts=2, last_reason="x",
                      recipients={"a@b": RecipientState("deferred", "4.4.1", "x")})
    state.save("0123456789ABCDEF0", st)
    data = json.loads((tmp_path / "0123456789ABCDEF0").read_text())
    assert data["attempts"] == 2 and data["recipients"]["a@b"]["status"] == "deferred"
    assert state.load("0123456789ABCDEF0") == st


def test_a_silent_next_hop_does_not_hold_up_other_destinations(tmp_path, loopback,
                                                               smtp_sink_factory):
    """A next hop that accepts TCP but never greets: a few sessions time out, the destination is
    marked dead, its other mail is deferred at once, and mail for a live destination flows."""
    from hardener.mta.delivery.smtp_client import Timeouts

    live = smtp_sink_factory()
    addr = loopback.address()
    sessions = 0

    async def body():
        async def silent(reader, writer):
            nonlocal sessions
            sessions += 1
            await reader.read()  # never says 220
            writer.close()

        server = await asyncio.start_server(silent, addr, 0)
        port = server.sockets[0].getsockname()[1]
        h = Harness(tmp_path, transport_map={"dead.example": f"smtp:[{addr}]:{port}",
                                             "live.example": f"smtp:[{live.address}]:{live.port}"},
                    retry=RetryPolicy(600, 1200, 600, 86400, 86400),
                    smtp_timeouts=Timeouts(connect=2, helo=2))

        async def inner():
            for i in range(100):
                await h.submit("a@test.example", [f"u{i}@dead.example"])
            for i in range(20):
                await h.submit("a@test.example", [f"u{i}@live.example"])
            assert await h.wait_for(lambda: live.message_count() == 20, timeout=30)
            assert await h.wait_for(lambda: h.count("deferred") == 100, timeout=30)

        await run_with(h, inner)
        server.close()

    asyncio.run(body())
    assert 1 <= sessions <= 5  # initial_destination_concurrency, not one per message
