"""cleanup: durable before commit() returns, nothing visible on failure, disk full -> CleanupError."""

from __future__ import annotations

import asyncio
import os
import subprocess

import pytest

from hardener.mta.cleanup.service import Cleanup, CleanupError, CleanupSettings
from hardener.mta.queue.file import open_content, read_envelope
from hardener.mta.queue.layout import QueueLayout

SETTINGS = CleanupSettings(myhostname="mx.hardener.test", myorigin="hardener.test")


def make(tmp_path, **kw) -> tuple[QueueLayout, Cleanup]:
    layout = QueueLayout(tmp_path / "queue")
    layout.ensure()
    return layout, Cleanup(layout, SETTINGS, **kw)


def test_commit_writes_incoming_with_received_header(tmp_path):
    layout, cleanup = make(tmp_path)
    woken = []
    cleanup.on_commit = woken.append

    async def go() -> str:
        w = cleanup.begin("a@b.example", ["root@mx.hardener.test"],
                          client=("unknown", "127.0.0.9"), helo="client.example")
        for chunk in (b"Subject: hi\nMess", b"age-ID: <1@b.example>\n\nbody\n"):
            await w.write(chunk)
        return await w.commit()

    qid = asyncio.run(go())
    assert woken == [qid]
    assert layout.list("incoming") == [qid] and layout.list("tmp") == []
    env = read_envelope(layout.path("incoming", qid))
    assert env.sender == "a@b.example" and env.client_address == "127.0.0.9"
    with open_content(layout.path("incoming", qid)) as f:
        content = f.read()
    assert content.startswith(b"Received: from client.example (unknown [127.0.0.9])\n\tby "
                              b"mx.hardener.test with ESMTP id " + qid.encode())
    assert b"\n\tfor <root@mx.hardener.test>; " in content
    assert content.endswith(b"Subject: hi\nMessage-ID: <1@b.example>\n\nbody\n")
    cleanup.close()


def test_abort_leaves_nothing(tmp_path):
    layout, cleanup = make(tmp_path)

    async def go() -> None:
        w = cleanup.begin("a@b.example", ["x@y.example"])
        await w.write(b"Subject: x\n\nbody\n")
        await w.abort()

    asyncio.run(go())
    assert layout.list("incoming") == [] and os.listdir(layout.dir("tmp")) == []
    cleanup.close()


def test_local_submission_adds_missing_headers_and_normalises(tmp_path):
    layout, cleanup = make(tmp_path)

    async def go() -> str:
        w = cleanup.begin("cron", ["admin@hardener.test"], local_submission=True,
                          full_name="Cron Daemon", submitter="0", protocol="local")
        await w.write(b"Subject: report\r\nBcc: secret@x.example\r\n\r\nline1\r")
        await w.write(b"\nline2\n")
        return await w.commit()

    qid = asyncio.run(go())
    with open_content(layout.path("incoming", qid)) as f:
        content = f.read().decode()
    assert "Bcc:" not in content and "\r" not in content
    assert "\nDate: " in content and "\nMessage-Id: <" in content
    assert "\nFrom: cron@hardener.test (Cron Daemon)\n" in content
    assert content.endswith("\n\nline1\nline2\n")
    cleanup.close()


def test_concurrent_commits_share_directory_fsyncs(tmp_path):
    layout, cleanup = make(tmp_path)

    async def one(i: int) -> str:
        w = cleanup.begin("a@b.example", [f"r{i}@y.example"])
        await w.write(b"Subject: %d\n\nbody\n" % i)
        return await w.commit()

    async def go() -> list[str]:
        return await asyncio.gather(*(one(i) for i in range(200)))

    qids = asyncio.run(go())
    assert sorted(qids) == layout.list("incoming") and len(set(qids)) == 200
    cleanup.close()


@pytest.fixture
def small_fs(tmp_path):
    """A real 1 MB tmpfs: writes past it fail with ENOSPC (disk full, no fake)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], check=True)
    yield mnt
    subprocess.run(["umount", str(mnt)], check=False)


def test_disk_full_raises_and_leaves_nothing_visible(small_fs):
    layout = QueueLayout(small_fs / "queue")
    layout.ensure()
    cleanup = Cleanup(layout, SETTINGS)

    async def go() -> None:
        w = cleanup.begin("a@b.example", ["x@y.example"])
        await w.write(b"Subject: big\n\n")
        for _ in range(64):
            await w.write(b"x" * 65535 + b"\n")
        await w.commit()

    with pytest.raises(CleanupError):
        asyncio.run(go())
    assert layout.list("incoming") == [] and os.listdir(layout.dir("tmp")) == []
    cleanup.close()
