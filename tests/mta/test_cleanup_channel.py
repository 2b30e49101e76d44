"""The smtpd -> cleanup channel (hardener/mta/cleanup/channel.py, client.py, server.py): a real
SEQPACKET socketpair as the master makes it, cleanup's ChannelServer with a real Cleanup on a real
queue, smtpd's CleanupClient or raw records from a misbehaving peer."""

from __future__ import annotations

import asyncio
import json

import pytest

from hardener.mta.cleanup import channel as ch
from hardener.mta.cleanup.client import CleanupClient
from hardener.mta.cleanup.server import ChannelServer
from hardener.mta.cleanup.service import Cleanup, CleanupError, CleanupSettings, new_queue_id
from hardener.mta.queue.file import open_content, read_envelope
from hardener.mta.queue.layout import QueueLayout

SETTINGS = CleanupSettings(myhostname="mx.hardener.test", myorigin="hardener.test")
GOOD_META = {"sender": "a@example.org", "client_name": "unknown", "client_address": "127.0.0.9",
             "helo": "client.example", "protocol": "ESMTP"}


class Rig:
    """Both ends in one event loop: cleanup's server and smtpd's client (or a raw peer)."""

    def __init__(self, tmp_path, recipient_limit: int = 1000, size_limit: int = 0) -> None:
        self.layout = QueueLayout(tmp_path / "queue")
        self.layout.ensure()
        self.smtpd_end, self.cleanup_end = ch.make_pair()
        self.cleanup = Cleanup(self.layout, SETTINGS)
        self.server = ChannelServer("smtp", self.cleanup_end, self.cleanup, recipient_limit,
                                    size_limit)

    def start(self) -> None:
        self.server.start(asyncio.get_running_loop())

    async def raw(self, *records: bytes, expect: int = 1) -> list[tuple[int, int, bytes]]:
        """Send one packet of raw records; the replies (up to `expect`, bounded wait)."""
        self.smtpd_end.send(b"".join(records))
        replies: list[tuple[int, int, bytes]] = []
        for _ in range(200):
            await asyncio.sleep(0.01)
            while True:
                try:
                    packet = self.smtpd_end.recv(ch.MAX_PACKET)
                except BlockingIOError:
                    break
                replies += [r for r in ch.records(packet) if r[0] != ch.RESTART]
            if expect and len(replies) >= expect:
                break
        return replies

    def close(self) -> None:
        self.server.stop()
        self.cleanup.close()
        self.smtpd_end.close()
        self.cleanup_end.close()


def _begin(sid: int, qid: str | None = None, **changes) -> bytes:
    meta = dict(GOOD_META, queue_id=qid or new_queue_id(), **changes)
    return ch.record(ch.BEGIN, sid, json.dumps(meta).encode())


def _rcpt(sid: int, address: str = "root@mx.hardener.test") -> bytes:
    return ch.record(ch.RCPT, sid, json.dumps([address, None, None]).encode())


def test_client_to_server_round_trip_is_durable_before_ok(tmp_path):
    rig = Rig(tmp_path)

    async def go() -> str:
        rig.start()
        client = CleanupClient(rig.smtpd_end)
        client.start(asyncio.get_running_loop())
        writer = client.begin("a@example.org", ["root@mx.hardener.test"],
                              client=("unknown", "127.0.0.9"), helo="client.example",
                              queue_id=new_queue_id())
        await writer.write(b"Subject: hi\n\n" + b"x" * 200_000 + b"\n")   # several DATA records
        qid = await writer.commit()
        client.close()
        return qid

    try:
        qid = asyncio.run(go())
    finally:
        rig.close()
    assert rig.layout.list("incoming") == [qid] and rig.layout.list("tmp") == []
    env = read_envelope(rig.layout.path("incoming", qid))
    assert env.sender == "a@example.org" and env.client_address == "127.0.0.9"
    with open_content(rig.layout.path("incoming", qid)) as f:
        assert f.read().endswith(b"x" * 200_000 + b"\n")


@pytest.mark.parametrize("bad, reason", [
    (lambda sid: _begin(sid, qid="../../etc/passwd"), "queue id"),
    (lambda sid: _begin(sid, sender="a\r\nX-Injected: 1@example.org"), "sender"),
    (lambda sid: _begin(sid, sender="a" * 5000 + "@example.org"), "sender"),
    (lambda sid: _begin(sid, client_address="not-an-ip"), "client address"),
    (lambda sid: _begin(sid, helo="x\x00y"), "helo"),
    (lambda sid: _begin(sid, protocol="ESMTP; rm"), "protocol"),
    (lambda sid: ch.record(ch.BEGIN, sid, b"{not json"), "envelope"),
    (lambda sid: ch.record(ch.BEGIN, sid, json.dumps({"queue_id": new_queue_id()}).encode()),
     "envelope"),
    (lambda sid: _begin(sid) + _rcpt(sid, "root\n@mx.hardener.test"), "recipient"),
    (lambda sid: _begin(sid) + ch.record(ch.RCPT, sid, b'["a@b", null, "NEVER\\r"]'), "NOTIFY"),
    (lambda sid: _begin(sid) + b"".join(_rcpt(sid) for _ in range(4)), "recipients"),
    (lambda sid: _begin(sid), "no recipients"),
])
def test_cleanup_refuses_bad_envelopes_and_writes_nothing(tmp_path, bad, reason):
    rig = Rig(tmp_path, recipient_limit=3)

    async def go():
        rig.start()
        return await rig.raw(bad(7), ch.record(ch.DATA, 7, b"Subject: x\n\nbody\n"),
                             ch.record(ch.COMMIT, 7))

    try:
        replies = asyncio.run(go())
    finally:
        rig.close()
    assert len(replies) == 1
    kind, sid, text = replies[0]
    assert (kind, sid) == (ch.FAIL, 7) and reason in text.decode()
    assert rig.layout.list("incoming") == [] and rig.layout.list("tmp") == []


def test_a_queue_id_already_queued_is_refused(tmp_path):
    """cleanup never overwrites a queued message whatever id smtpd names."""
    rig = Rig(tmp_path)
    qid = new_queue_id()
    (rig.layout.dir("active") / qid).write_bytes(b"queued before")

    async def go():
        rig.start()
        return await rig.raw(_begin(1, qid=qid), _rcpt(1), ch.record(ch.DATA, 1, b"\nb\n"),
                             ch.record(ch.COMMIT, 1))

    try:
        replies = asyncio.run(go())
    finally:
        rig.close()
    assert [(k, s) for k, s, _ in replies] == [(ch.FAIL, 1)]
    assert (rig.layout.dir("active") / qid).read_bytes() == b"queued before"
    assert rig.layout.list("incoming") == []


def test_size_limit_and_unknown_stream(tmp_path):
    rig = Rig(tmp_path, size_limit=100)

    async def go():
        rig.start()
        return await rig.raw(_begin(1), _rcpt(1), ch.record(ch.DATA, 1, b"x" * 101),
                             ch.record(ch.COMMIT, 1), ch.record(ch.COMMIT, 99), expect=2)

    try:
        replies = asyncio.run(go())
    finally:
        rig.close()
    assert sorted((k, s) for k, s, _ in replies) == [(ch.FAIL, 1), (ch.FAIL, 99)]
    assert rig.layout.list("tmp") == [] and rig.layout.list("incoming") == []


def test_reset_forgets_the_replaced_smtpd_streams(tmp_path):
    """A restarted smtpd sends RESET: cleanup drops the old process's half-sent message (its
    temporary file too) and answers with the new process's nonce."""
    rig = Rig(tmp_path)

    async def go():
        rig.start()
        await rig.raw(_begin(5), _rcpt(5), ch.record(ch.DATA, 5, b"Subject: x\n\n" + b"y" * 60000),
                      ch.record(ch.DATA, 5, b"y" * 60000),
                      expect=0)
        spilled = rig.layout.list("tmp")
        replies = await rig.raw(ch.record(ch.RESET, 0, b"nonce-01"), ch.record(ch.COMMIT, 5),
                                expect=2)
        return spilled, replies

    try:
        spilled, replies = asyncio.run(go())
    finally:
        rig.close()
    assert len(spilled) == 1   # the old message had reached tmp/
    assert replies[0] == (ch.RESET_ACK, 0, b"nonce-01")
    assert [(k, s) for k, s, _ in replies[1:]] == [(ch.FAIL, 5)]   # it is gone
    assert rig.layout.list("tmp") == [] and rig.layout.list("incoming") == []


def test_a_restarted_cleanup_fails_the_commits_smtpd_waits_for(tmp_path):
    """smtpd's client: a RESTART from cleanup fails a waiting commit (smtpd answers 451); a reply
    before the RESET_ACK with its own nonce (for the smtpd it replaced) is ignored."""
    smtpd_end, cleanup_end = ch.make_pair()

    async def go():
        loop = asyncio.get_running_loop()
        client = CleanupClient(smtpd_end)
        client.start(loop)
        # a stale OK for an old process's stream, before our RESET_ACK: ignored
        cleanup_end.send(ch.record(ch.OK, 1, b"0123456789ABCDEF0"))
        await asyncio.sleep(0.05)
        packet = cleanup_end.recv(ch.MAX_PACKET)
        ((kind, _, nonce),) = list(ch.records(packet))
        assert kind == ch.RESET
        cleanup_end.send(ch.record(ch.RESET_ACK, 0, nonce))
        writer = client.begin("a@example.org", ["b@example.org"], queue_id=new_queue_id())
        await writer.write(b"\nbody\n")
        commit = loop.create_task(writer.commit())
        await asyncio.sleep(0.05)
        assert not commit.done()   # waits for cleanup's answer
        cleanup_end.send(ch.record(ch.RESTART, 0))
        with pytest.raises(CleanupError, match="cleanup restarted"):
            await asyncio.wait_for(commit, 5)
        client.close()

    try:
        asyncio.run(go())
    finally:
        smtpd_end.close()
        cleanup_end.close()


def test_a_malformed_packet_resets_the_channel(tmp_path):
    rig = Rig(tmp_path)

    async def go():
        rig.start()
        await rig.raw(_begin(3), _rcpt(3), ch.record(ch.DATA, 3, b"\n" + b"z" * 60000),
                      ch.record(ch.DATA, 3, b"z" * 60000), expect=0)
        assert len(rig.layout.list("tmp")) == 1
        return await rig.raw(b"\x03\x00\x00\x00\x03\xff\xff\xff\xff", ch.record(ch.COMMIT, 3),
                             expect=0)

    try:
        replies = asyncio.run(go())
    finally:
        rig.close()
    assert rig.layout.list("tmp") == [] and rig.layout.list("incoming") == []
    assert [(k, s) for k, s, _ in replies] in ([], [(ch.FAIL, 3)])
