"""Connection limits as Postfix's master and anvil enforce them, against the real daemon on loopback.

- When a service's process limit is reached, the daemon stops accepting (as Postfix's master stops
  watching the listening socket): excess clients wait in the kernel's listen backlog and get their
  220 when a session ends. Nobody gets a 421 for the process limit.
- smtpd_client_connection_count_limit per client address (anvil), with
  smtpd_client_event_limit_exceptions exempt: Postfix's wording, compared with a real Postfix.
"""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import sys
import time

from tests.fixtures.mta import SmtpClient

LIMITED_MASTER_CF = "{listen} inet n - n - 5 smtpd\nlocal unix - n n - - local\n"


def greeted(mta, source: str) -> SmtpClient:
    c = SmtpClient(mta.address, mta.port, source=source)
    code, text = c.greeting()
    assert code == 220, text
    return c


def test_process_limit_queues_in_the_backlog_without_421(mta_factory, loopback):
    mta = mta_factory(master_cf_text=LIMITED_MASTER_CF)
    untrusted = loopback.address()
    held = [greeted(mta, untrusted) for _ in range(5)]
    # the 6th (trusted) client is accepted by the kernel but not served: no reply at all yet
    waiting = socket.create_connection((mta.address, mta.port), timeout=10,
                                       source_address=("127.0.0.1", 0))
    waiting.settimeout(1.0)
    try:
        try:
            early = waiting.recv(512)
        except socket.timeout:
            early = b""
        assert early == b"", f"served or refused while the limit was reached: {early!r}"
        held[0].cmd("QUIT")
        held[0].close()
        waiting.settimeout(10)
        assert waiting.recv(512).startswith(b"220 "), "no 220 once a session ended"
    finally:
        waiting.close()
        for c in held[1:]:
            c.close()
    log = mta.log_text()
    assert "421" not in log and "Service currently unavailable" not in log


def test_count_limit_wording_matches_postfix(mta_factory, postfix_factory, loopback):
    settings = {"smtpd_client_connection_count_limit": "2",
                "smtpd_client_event_limit_exceptions": "127.0.0.1/32"}
    replies = []
    for server in (postfix_factory(settings), mta_factory(settings)):
        source = loopback.address()
        held = [greeted(server, source) for _ in range(2)]
        with SmtpClient(server.address, server.port, source=source) as c:
            code, text = c.greeting()
            replies.append(text.replace(source, "ADDR").split(" ", 3))
            assert c.closed_by_peer()
        # exempt addresses are not counted: 3 sessions from the exception list all get 220
        exempt = [greeted(server, "127.0.0.1") for _ in range(3)]
        for c in held + exempt:
            c.close()
    theirs, ours = replies
    assert ours[:2] == theirs[:2] == ["421", "4.7.0"]
    assert ours[3] == theirs[3] == "Error: too many connections from ADDR"
    assert ours[2] == "mx.hardener.test"


def test_count_limit_is_logged_as_postfix_does(mta_factory, loopback):
    mta = mta_factory({"smtpd_client_connection_count_limit": "1"})
    source = loopback.address()
    with greeted(mta, source):
        with SmtpClient(mta.address, mta.port, source=source) as c:
            assert c.greeting()[0] == 421
    mta.wait_for_log(f"Connection concurrency limit exceeded: 2 from unknown[{source}] "
                     "for service")


async def _client(address: str, port: int, source: str, hold: float) -> str:
    """One client: connect, read the greeting, hold the session `hold` s, QUIT. Returns the
    greeting's code or the error's name; every wait is bounded."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(address, port, local_addr=(source, 0)), 30)
    except (OSError, asyncio.TimeoutError) as exc:
        return type(exc).__name__
    try:
        line = await asyncio.wait_for(reader.readline(), 90)
        code = line[:3].decode(errors="replace") or "EOF"
        if code == "220":
            await asyncio.sleep(hold)
            writer.write(b"QUIT\r\n")
            await asyncio.wait_for(reader.readline(), 30)
        return code
    except (OSError, asyncio.TimeoutError) as exc:
        return type(exc).__name__
    finally:
        writer.close()


def concurrent_clients(address: str, port: int, sources: list[str], hold: float) -> dict[str, int]:
    """Connect len(sources) clients at once; {result: count}."""
    async def run() -> list[str]:
        return await asyncio.gather(*(_client(address, port, s, hold) for s in sources))

    results = asyncio.run(run())
    counts: dict[str, int] = {}
    for r in results:
        counts[r] = counts.get(r, 0) + 1
    return counts


def test_500_concurrent_connections_are_all_served(mta_factory, loopback):
    """500 clients at once against the default process limit (100): all get 220, none 421.
    Sources: 250 trusted (127.0.0.1) and 250 spread over 10 untrusted addresses (25 each, under
    the count limit of 50)."""
    mta = mta_factory()
    untrusted = [loopback.address() for _ in range(10)]
    sources = ["127.0.0.1"] * 250 + [untrusted[i % 10] for i in range(250)]
    start = time.monotonic()
    counts = concurrent_clients(mta.address, mta.port, sources, hold=1.0)
    elapsed = time.monotonic() - start
    print(f"\n500 concurrent connections, default_process_limit 100: {counts} in {elapsed:.1f} s")
    assert counts == {"220": 500}, counts
    assert not re.search(r"process limit|Service currently unavailable", mta.log_text())


def test_sessions_open_across_a_reload_still_count(mta_factory, loopback):
    """A reload builds a new anvil with the new limits; the sessions already open must still count
    against their client (Postfix's anvil outlives an smtpd reload)."""
    mta = mta_factory({"smtpd_client_connection_count_limit": "2"})
    source = loopback.address()
    with greeted(mta, source), greeted(mta, source):
        subprocess.run([sys.executable, "-m", "hardener", "mta", "reload", "--config",
                        str(mta.config_dir)], check=True, capture_output=True, timeout=60)
        mta.wait_for_log("reload -- configuration")
        with SmtpClient(mta.address, mta.port, source=source) as c:
            assert c.greeting()[0] == 421
    with greeted(mta, source):   # both closed: the client is welcome again
        pass
