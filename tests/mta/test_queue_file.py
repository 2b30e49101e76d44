"""Queue file format: round trip, and anything malformed is a QueueFileError (never a crash)."""

from __future__ import annotations

import pytest

from hardener.mta.cleanup.service import new_queue_id
from hardener.mta.queue.file import (Envelope, QueueFileError, Recipient, format_envelope,
                                     open_content, parse_bytes, read_envelope)
from hardener.mta.queue.layout import QueueLayout, valid_queue_id


def make_env(qid: str, size: int = 5) -> Envelope:
    return Envelope(queue_id=qid, arrival=1764091234.5, sender='"odd user"@example.com',
                    recipients=[Recipient("bob@example.net", "rfc822;bob@example.net", "FAILURE"),
                                Recipient("caf\u00e9@example.net")],
                    client_name="unknown", client_address="127.0.0.5", helo="h e%lo",
                    protocol="ESMTP", size=size, flags=frozenset({"bounce"}))


def test_round_trip_and_human_readable(tmp_path):
    qid = new_queue_id()
    data = format_envelope(make_env(qid)) + b"hello"
    text = data.decode("ascii")
    assert 'sender: "odd%20user"@example.com' in text
    assert "recipient: bob@example.net orcpt=rfc822;bob@example.net notify=FAILURE" in text
    env, content = parse_bytes(data, qid)
    assert env == make_env(qid)
    assert env.is_bounce and content == b"hello"
    path = tmp_path / qid
    path.write_bytes(data)
    assert read_envelope(path) == make_env(qid)
    with open_content(path) as f:
        assert f.read() == b"hello"


def test_null_sender_and_empty_helo():
    qid = new_queue_id()
    env = make_env(qid)
    env.sender, env.helo = "", ""
    parsed, _ = parse_bytes(format_envelope(env) + b"hello", qid)
    assert parsed.sender == "" and parsed.helo == ""


@pytest.mark.parametrize("mutate", [
    lambda d: d.replace(b"hardener-queue-file: 1", b"hardener-queue-file: 9"),
    lambda d: d.replace(b"size: 5", b"size: five"),
    lambda d: d.replace(b"size: 5", b"size: 6"),
    lambda d: d.replace(b"arrival:", b"arrivl:"),
    lambda d: d.replace(b"\n\n", b"\n"),
    lambda d: b"garbage" + d,
    lambda d: d.replace(b"flags: bounce", b"flags: evil"),
    lambda d: d.replace(b"notify=FAILURE", b"bogus=1"),
    lambda d: d.replace(b"odd%20user", b"odd%2"),
    lambda d: d.replace(b"client-name: unknown\n", b""),
    lambda d: d.replace(b"queue-id: ", b"queue-id: ../"),
    lambda d: d[:40],
    lambda d: b"",
])
def test_malformed_files_raise_queue_file_error(tmp_path, mutate):
    qid = new_queue_id()
    path = tmp_path / qid
    path.write_bytes(mutate(format_envelope(make_env(qid)) + b"hello"))
    with pytest.raises(QueueFileError):
        read_envelope(path)


def test_queue_id_inside_must_match_file_name(tmp_path):
    qid, other = new_queue_id(), new_queue_id()
    path = tmp_path / other
    path.write_bytes(format_envelope(make_env(qid)) + b"hello")
    with pytest.raises(QueueFileError):
        read_envelope(path)


def test_queue_ids_unique_and_safe():
    ids = [new_queue_id() for _ in range(20000)]
    assert len(set(ids)) == len(ids)
    assert all(valid_queue_id(q) for q in ids)
    assert not valid_queue_id("../etc/passwd") and not valid_queue_id("abc") \
        and not valid_queue_id("0123456789abcdef")


def test_layout_refuses_bad_names_and_lists_only_queue_ids(tmp_path):
    layout = QueueLayout(tmp_path / "q")
    layout.ensure()
    with pytest.raises(ValueError):
        layout.path("incoming", "../../x")
    with pytest.raises(ValueError):
        layout.dir("nonsense")
    qid = new_queue_id()
    (layout.dir("incoming") / qid).write_bytes(b"x")
    (layout.dir("incoming") / "not-a-queue-id").write_bytes(b"x")
    assert layout.list("incoming") == [qid]
    layout.move(qid, "incoming", "active")
    assert layout.list("active") == [qid] and layout.list("incoming") == []


def test_forked_processes_do_not_share_the_queue_id_sequence():
    """smtpd, qmgr and pickup are forked from one master: each must draw its own ids."""
    import os

    from hardener.mta.cleanup.service import new_queue_id

    new_queue_id()   # the parent's sequence is in use
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(rfd)
        os.write(wfd, "".join(new_queue_id()[-5:] for _ in range(4)).encode())
        os._exit(0)
    os.close(wfd)
    child_tails = os.read(rfd, 100).decode()
    os.close(rfd)
    os.waitpid(pid, 0)
    parent_tails = "".join(new_queue_id()[-5:] for _ in range(4))
    assert child_tails != parent_tails
