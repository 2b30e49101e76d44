"""Queue tools (list/flush/delete/hold/release) on a queue filled by the real cleanup and qmgr."""

from __future__ import annotations

import asyncio
import json

import pytest
from typer.testing import CliRunner

from hardener.cli.mta_queue_cmd import app as queue_app
from hardener.errors import InputError
from hardener.mta.qmgr.retry import RetryPolicy
from hardener.mta.queue.tools import QueueTools, format_mailq
from tests.mta.back_harness import Harness, run_with


@pytest.fixture
def deferred(tmp_path, loopback):
    """A queue with 3 deferred messages (their next hop refuses connections)."""
    from tests.fixtures.net import free_port

    addr = loopback.address()
    h = Harness(tmp_path, relayhost=f"[{addr}]:{free_port(addr)}",
                retry=RetryPolicy(3600, 7200, 3600, 86400, 86400))

    async def body():
        for i in range(3):
            await h.submit("alice@test.example", [f"r{i}@remote.example", "x@remote.example"])
        assert await h.wait_for(lambda: h.count("deferred") == 3)

    asyncio.run(run_with(h, body))
    (tmp_path / "main.cf").write_text(f"queue_directory = {h.layout.root}\n")
    return h, tmp_path


def test_list_shows_reason_attempts_and_recipients(deferred):
    h, _ = deferred
    entries = QueueTools(h.layout.root).entries()
    assert len(entries) == 3
    e = entries[0]
    assert e.queue_name == "deferred" and e.sender == "alice@test.example" and e.attempts == 1
    assert "Connection refused" in e.last_reason
    assert [r.address for r in e.recipients][1] == "x@remote.example"
    text = format_mailq(entries)
    assert "Connection refused" in text and "-- 1 Kbytes in 3 Requests." in text


def test_cli_json_hold_release_delete_flush(deferred):
    h, config = deferred
    runner = CliRunner()
    out = runner.invoke(queue_app, ["list", "--config", str(config), "--format", "json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert {m["queue_name"] for m in data} == {"deferred"}
    assert data[0]["recipients"][0]["status"] == "deferred"
    assert "Connection refused" in data[0]["recipients"][0]["delay_reason"]
    first, second, third = (m["queue_id"] for m in data)
    assert runner.invoke(queue_app, ["hold", first, "--config", str(config)]).exit_code == 0
    assert h.layout.list("hold") == [first]
    assert "!" in runner.invoke(queue_app, ["list", "--config", str(config)]).output
    assert runner.invoke(queue_app, ["release", first, "--config", str(config)]).exit_code == 0
    assert h.layout.list("incoming") == [first]
    assert runner.invoke(queue_app, ["delete", second, "--config", str(config)]).exit_code == 0
    assert second not in h.layout.list("deferred")
    assert not (h.layout.dir("defer") / second).exists()
    out = runner.invoke(queue_app, ["flush", "--config", str(config)])
    assert out.exit_code == 0 and "flushed 1" in out.output
    assert sorted(h.layout.list("incoming")) == sorted([first, third])


def test_bad_ids_are_input_errors(deferred):
    h, _ = deferred
    tools = QueueTools(h.layout.root)
    with pytest.raises(InputError):
        tools.delete("../../etc/passwd")
    with pytest.raises(InputError):
        tools.release("0123456789ABCDEF0")


def test_empty_queue(tmp_path):
    h = Harness(tmp_path)
    h.cleanup.close()
    assert format_mailq(QueueTools(h.layout.root).entries()) == "Mail queue is empty\n"


def test_flush_reaches_the_running_daemon(mta_factory, smtp_sink_factory, loopback):
    """Deferred mail to a dead next hop, long backoff; after `queue flush` it goes out at once."""
    import subprocess
    import sys

    from tests.fixtures.net import free_port
    from tests.fixtures.relay import queue_count, smtp_source, wait_until

    addr = loopback.host()
    port = free_port(addr)
    mta = mta_factory({"smtp_tls_security_level": "none", "relayhost": f"[{addr}]:{port}",
                       "minimal_backoff_time": "300s", "queue_run_delay": "300s"})
    assert smtp_source(mta, 5, 1).returncode == 0
    assert wait_until(lambda: queue_count(mta, "deferred") == 5, 30)
    sink = smtp_sink_factory(addr, port)
    listed = subprocess.run([sys.executable, "-m", "hardener", "mta", "queue", "list", "--config",
                             str(mta.config_dir), "--format", "json"], capture_output=True,
                            text=True, timeout=60)
    assert listed.returncode == 0 and len(json.loads(listed.stdout)) == 5
    flushed = subprocess.run([sys.executable, "-m", "hardener", "mta", "queue", "flush",
                              "--config", str(mta.config_dir)], capture_output=True, text=True,
                             timeout=60)
    assert flushed.returncode == 0, flushed.stderr
    # within 30 s, so long before the 300 s backoff and the dead-hop mark would have expired
    assert sink.wait_for_messages(5, timeout=30) == 5, mta.log_text()[-2000:]
    assert "flush requested" in mta.log_text()
