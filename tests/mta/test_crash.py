"""kill -9 of the daemon in the middle of a 1,000-message run, then a restart: every message that got
a 250 is delivered; duplicates (at most the deliveries in flight) are counted and reported."""

from __future__ import annotations

import re
import smtplib
import threading
import time

import pytest

from tests.fixtures import procs
from tests.fixtures.relay import NO_TLS, queue_count, smtp_source, wait_until

CLIENTS = 4


def _client(mta, ids: range, accepted: list[int], stop: threading.Event) -> None:
    try:
        with smtplib.SMTP(mta.address, mta.port, timeout=30) as s:
            s.ehlo("client.test")
            for n in ids:
                if stop.is_set():
                    return
                body = (f"From: <s@sender.example>\r\nTo: <r@remote.example>\r\n"
                        f"Subject: crash test {n}\r\nX-Test-Id: {n}\r\n\r\n" + "x" * 1000 +
                        "\r\n").encode()
                s.sendmail("s@sender.example", [f"r{n}@remote.example"], body)
                accepted.append(n)
    except (OSError, smtplib.SMTPException):
        return  # the daemon died under us


def _sink_ids(sink) -> list[int]:
    ids = []
    for f in sink.message_files():
        m = re.search(r"^X-Test-Id: (\d+)$", f.read_text(errors="replace"), re.M)
        if m:
            ids.append(int(m.group(1)))
    return ids


def _crash_run(mta_factory, smtp_sink_factory, total: int, kill_after: int) -> tuple[int, int, int]:
    sink = smtp_sink_factory()
    mta = mta_factory({**NO_TLS, "relayhost": f"[{sink.address}]:{sink.port}"})
    accepted: list[int] = []
    stop = threading.Event()
    per = total // CLIENTS
    threads = [threading.Thread(target=_client, args=(mta, range(i * per, (i + 1) * per),
                                                      accepted, stop)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    assert wait_until(lambda: len(accepted) >= kill_after, 120)
    mta.kill9()
    stop.set()
    for t in threads:
        t.join(60)
    got_250 = set(accepted)
    mta.start()
    assert wait_until(lambda: queue_count(mta) == 0, 120), mta.log_text()[-2000:]
    time.sleep(1.0)
    delivered = _sink_ids(sink)
    missing = got_250 - set(delivered)
    assert not missing, f"{len(missing)} messages got a 250 and were lost: {sorted(missing)[:10]}"
    duplicates = len(delivered) - len(set(delivered))
    print(f"\ncrash run: {len(got_250)} accepted with 250 before kill -9, {len(set(delivered))} "
          f"delivered, {duplicates} duplicate(s)")
    return len(got_250), len(set(delivered)), duplicates


def test_kill9_in_the_middle_loses_nothing(mta_factory, smtp_sink_factory):
    _, _, duplicates = _crash_run(mta_factory, smtp_sink_factory, 1000, 400)
    # At most the deliveries in flight: default_destination_concurrency_limit (20).
    assert duplicates <= 20


@pytest.mark.slow
def test_kill9_soak_10000(mta_factory, smtp_sink_factory):
    _, _, duplicates = _crash_run(mta_factory, smtp_sink_factory, 10000, 5000)
    assert duplicates <= 20


def _qmgr_child(mta) -> int:
    """The daemon's qmgr process: the child that runs as the mail owner (pickup stays root)."""
    import pwd

    uid = pwd.getpwnam("hardener").pw_uid
    main = mta.pids()[0]
    for pid in mta.pids()[1:]:
        real_uid = int(procs.status(pid)["Uid"].split()[0])
        comm = procs.comm(pid)   # pickup and cleanup: mail owner too
        if real_uid == uid and pid != main and comm == "qmgr":
            return pid
    raise AssertionError("no qmgr child process")


def test_a_crashed_qmgr_process_is_restarted(mta_factory, smtp_sink_factory):
    import os
    import signal

    sink = smtp_sink_factory()
    mta = mta_factory({**NO_TLS, "relayhost": f"[{sink.address}]:{sink.port}"})
    os.kill(_qmgr_child(mta), signal.SIGKILL)
    mta.wait_for_log("restarting it")
    assert smtp_source(mta, 20, 2).returncode == 0
    assert sink.wait_for_messages(20, timeout=30) == 20, mta.log_text()[-2000:]
    assert wait_until(lambda: queue_count(mta) == 0, 30)
