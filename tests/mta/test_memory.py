"""Memory stays bounded whatever the message size: content streams from the socket to the queue file.

The full run (slow) sends ten 100 MB messages over 10 parallel sessions and checks that the peak RSS
of every process of the daemon (VmHWM) stays under 60 MB: a process that held one message in memory
would pass it. The quick run sends three 20 MB messages. Since privilege separation the daemon is
several processes forked from one master, and their VmHWM counts the shared copy-on-write pages in
each of them, so the sum over-states what they use together; the sum and the per-process figures are
printed for docs/benchmarks.md ("## MTA memory").
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.fixtures import procs
from tests.fixtures.mta import SmtpClient

LINE = b"x" * 76 + b"\r\n"


def vm_hwm_kb(pid: int) -> int:
    return int(procs.status(pid).get("VmHWM", "0 kB").split()[0])


def send_big(address: str, port: int, size: int, results: list, index: int) -> None:
    try:
        with SmtpClient(address, port, timeout=120) as c:
            c.greeting()
            c.cmd("EHLO big.example")
            c.cmd("MAIL FROM:<big@sender.example>")
            c.cmd("RCPT TO:<root@mx.hardener.test>")
            assert c.cmd("DATA")[0] == 354
            block = LINE * (1024 * 1024 // len(LINE))
            c.send_raw(f"Subject: big {index}\r\n\r\n".encode())
            sent = 0
            while sent < size:
                c.send_raw(block)
                sent += len(block)
            results[index] = c.cmd(b".")
            c.cmd("QUIT")
    except Exception as exc:  # report in the main thread
        results[index] = exc


def run_parallel(mta, count: int, size: int) -> tuple[list, dict[str, int]]:
    results: list = [None] * count
    threads = [threading.Thread(target=send_big, args=(mta.address, mta.port, size, results, i))
               for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    per_process = {f"{Path(f'/proc/{pid}/comm').read_text().strip()}[{pid}]": vm_hwm_kb(pid)
                   for pid in mta.pids()}
    print("\nVmHWM per process (kB):", per_process)
    return results, per_process


def check(mta, count: int, size: int, limit_mb: int) -> int:
    """Send `count` messages of `size` at once; every process's peak RSS stays under `limit_mb`."""
    results, per_process = run_parallel(mta, count, size)
    for r in results:
        assert isinstance(r, tuple) and r[0] == 250, r
    largest = max(per_process.values())
    print(f"\nMTA memory: {count} x {size // 2**20} MB over {count} sessions: largest process "
          f"peak RSS {largest / 1024:.1f} MB; VmHWM summed over {len(per_process)} processes "
          f"{sum(per_process.values()) / 1024:.1f} MB (shared pages counted in each)")
    assert largest < limit_mb * 1024, per_process
    return largest


def test_memory_quick(mta_factory):
    # local delivery would copy the messages into Maildirs: keep them queued (hold by a dead hop)
    mta = mta_factory({"message_size_limit": str(200 * 2**20),
                       "default_transport": "error:held for the memory test",
                       "local_transport": "error:held for the memory test"})
    check(mta, 3, 20 * 2**20, 60)


@pytest.mark.slow
def test_memory_ten_100mb_messages(mta_factory):
    mta = mta_factory({"message_size_limit": str(200 * 2**20),
                       "default_transport": "error:held for the memory test",
                       "local_transport": "error:held for the memory test"})
    check(mta, 10, 100 * 2**20, 60)
