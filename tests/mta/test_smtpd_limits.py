"""Postfix's per-session limits in smtpd, each compared with a real Postfix given the same main.cf:
smtpd_junk_command_limit, smtpd_hard_error_limit, smtpd_soft_error_limit with
smtpd_error_sleep_time, smtpd_recipient_overshoot_limit, smtpd_timeout in DATA (per read, and the
smtpd_per_request_deadline with smtpd_min_data_rate), queue_minfree, header_size_limit."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.fixtures.mta import SmtpClient

# the same main.cf for both servers; small time limits so that the tests run in seconds
SETTINGS = {
    "myhostname": "mx.hardener.test", "mydomain": "hardener.test",
    "mydestination": "$myhostname, localhost", "mynetworks": "127.0.0.1/32",
    "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
    "compatibility_level": "3.6", "inet_protocols": "ipv4",
    "smtpd_error_sleep_time": "0", "disable_vrfy_command": "no", "smtpd_helo_required": "yes",
}
MAX_COMMANDS = 2000   # every command loop below is bounded


def hung_up(c: SmtpClient, timeout: float = 5.0) -> bool:
    """True when the server closes the connection within `timeout` (EOF, or a reset because a
    command we had already sent was left unread)."""
    c.sock.settimeout(timeout)
    try:
        while c.sock.recv(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except OSError:
        return False


def transcript(server, source: str, commands: list[str], until_closed: bool = False) -> list[str]:
    """Replies to `commands` sent one at a time (the last one repeated up to MAX_COMMANDS times
    when until_closed), ending with the reply that closed the session, if any."""
    replies = []
    with SmtpClient(server.address, server.port, source=source) as c:
        c.greeting()
        todo = list(commands)
        sent = 0
        while todo and sent < MAX_COMMANDS:
            line = todo[0] if until_closed and len(todo) == 1 else todo.pop(0)
            try:
                code, text = c.cmd(line)
            except ConnectionError:
                replies.append("(closed)")
                break
            sent += 1
            replies.append(text.splitlines()[0] if line.startswith("EHLO") else text)
            if code == 421:
                replies.append("(closed)" if hung_up(c) else "(open)")
                break
    return replies


def both(postfix_factory, mta_factory, settings: dict[str, str]):
    merged = {**SETTINGS, **settings}
    return postfix_factory(merged), mta_factory(merged)


def test_2000_noops_hit_the_junk_and_error_limits_as_in_postfix(postfix_factory, mta_factory,
                                                                 loopback):
    """Defaults: after 100 junk commands each NOOP is an error; at 20 errors, 421."""
    postfix, mta = both(postfix_factory, mta_factory, {})
    source = loopback.address()
    theirs = transcript(postfix, source, ["EHLO client.example", "NOOP"], until_closed=True)
    ours = transcript(mta, source, ["EHLO client.example", "NOOP"], until_closed=True)
    assert ours == theirs
    assert ours[-2:] == ["421 4.7.0 mx.hardener.test Error: too many errors", "(closed)"]
    assert ours.count("250 2.0.0 Ok") == 120        # EHLO + 120 NOOPs: junk 101.. are errors
    assert "too many errors after NOOP from" in mta.log_text()


def test_every_junk_command_counts_and_queued_mail_forgives(postfix_factory, mta_factory,
                                                           loopback):
    settings = {"smtpd_junk_command_limit": "3", "smtpd_hard_error_limit": "3"}
    postfix, mta = both(postfix_factory, mta_factory, settings)
    source = loopback.address()
    script = ["HELO client.example", "RSET", "EHLO client.example", "VRFY root", "NOOP",
              # a delivered message clears errors and junk: 3 more junk commands are fine
              "MAIL FROM:<a@client.example>", "RCPT TO:<root@mx.hardener.test>", "DATA",
              "Subject: t\r\n\r\nhi\r\n.", "NOOP", "RSET", "NOOP", "NOOP", "NOOP", "NOOP", "NOOP",
              "NOOP"]
    theirs = transcript(postfix, source, script)
    ours = transcript(mta, source, script)
    strip = [r.split(" queued as ")[0] for r in theirs], [r.split(" queued as ")[0] for r in ours]
    assert strip[1] == strip[0]
    assert ours[-2:] == ["421 4.7.0 mx.hardener.test Error: too many errors", "(closed)"]


def test_unknown_and_empty_commands_are_errors_as_in_postfix(postfix_factory, mta_factory,
                                                            loopback):
    postfix, mta = both(postfix_factory, mta_factory, {"smtpd_hard_error_limit": "3"})
    source = loopback.address()
    script = ["HELP", "", "FOO bar", "NOOP"]
    assert transcript(mta, source, script) == transcript(postfix, source, script)


def test_error_sleep_after_soft_limit(postfix_factory, mta_factory, loopback):
    """From smtpd_soft_error_limit errors on, every reply waits smtpd_error_sleep_time."""
    settings = {"smtpd_soft_error_limit": "2", "smtpd_error_sleep_time": "1s",
                "smtpd_hard_error_limit": "10"}
    for server in both(postfix_factory, mta_factory, settings):
        with SmtpClient(server.address, server.port, source=loopback.address()) as c:
            c.greeting()
            for _ in range(2):
                assert c.cmd("FOO")[0] == 500
            start = time.monotonic()
            assert c.cmd("NOOP")[0] == 250    # any reply, not only errors, waits
            assert time.monotonic() - start >= 0.9, server


def test_recipient_overshoot_is_no_error_until_its_limit(postfix_factory, mta_factory, loopback):
    settings = {"smtpd_recipient_limit": "1", "smtpd_recipient_overshoot_limit": "2",
                "smtpd_hard_error_limit": "2"}
    postfix, mta = both(postfix_factory, mta_factory, settings)
    source = loopback.address()
    script = ["EHLO client.example", "MAIL FROM:<a@client.example>",
              "RCPT TO:<root@mx.hardener.test>"]
    theirs = transcript(postfix, source, script, until_closed=True)
    ours = transcript(mta, source, script, until_closed=True)
    assert ours == theirs
    assert ours[2:] == ["250 2.1.5 Ok"] + ["452 4.5.3 Error: too many recipients"] * 4 + [
        "421 4.7.0 mx.hardener.test Error: too many errors", "(closed)"]


def _start_data(server, source: str) -> SmtpClient:
    c = SmtpClient(server.address, server.port, source=source, timeout=30)
    c.greeting()
    c.cmd("EHLO client.example")
    assert c.cmd("MAIL FROM:<a@client.example>")[0] == 250
    assert c.cmd("RCPT TO:<root@mx.hardener.test>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    return c


def test_silent_client_in_data_times_out_per_read(postfix_factory, mta_factory, loopback):
    for server in both(postfix_factory, mta_factory, {"smtpd_timeout": "2s"}):
        with _start_data(server, loopback.address()) as c:
            c.send_raw(b"Subject: slow\r\n")
            assert c.read_reply()[1] == "421 4.4.2 mx.hardener.test Error: timeout exceeded"


def trickle(c: SmtpClient, interval: float, limit: float) -> tuple[str, float]:
    """Send one byte every `interval` s until the server answers (or `limit` s pass)."""
    start = time.monotonic()
    c.sock.settimeout(interval)
    while time.monotonic() - start < limit:
        try:
            c.send_raw(b"x")
        except OSError:
            break
        try:
            data = c.sock.recv(512)
        except TimeoutError:
            continue
        except OSError:
            break
        return data.decode(errors="replace").strip(), time.monotonic() - start
    return "", time.monotonic() - start


def test_trickled_data_is_cut_off_by_the_request_deadline(postfix_factory, mta_factory, loopback):
    """smtpd_per_request_deadline (on under stress): one byte every 0.5 s is far below
    smtpd_min_data_rate, so the DATA deadline (smtpd_timeout) runs out; without it, each read
    only has to return within smtpd_timeout."""
    settings = {"smtpd_timeout": "3s", "smtpd_per_request_deadline": "yes"}
    for server in both(postfix_factory, mta_factory, settings):
        with _start_data(server, loopback.address()) as c:
            reply, elapsed = trickle(c, 0.5, 30)
            assert reply == "421 4.4.2 mx.hardener.test Error: timeout exceeded", server
            assert elapsed < 15
    assert "timeout after DATA (" in server.log_text()
    mta_plain = mta_factory({**SETTINGS, "smtpd_timeout": "3s"})
    with _start_data(mta_plain, loopback.address()) as c:
        assert trickle(c, 0.5, 6)[0] == ""   # still open: each read returned in time


@pytest.fixture
def tmpfs_queue():
    """Mount a 2 MB tmpfs on a queue directory (a disk that really is almost full) and unmount
    it at the end."""
    mounted = []

    def mount(path):
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(path)], check=True)
        mounted.append(path)

    yield mount
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.mark.parametrize("settings, expected", [
    ({}, 452),                                                     # 1.5 x 10240000 > 2 MB
    ({"message_size_limit": "100000"}, 250),
    ({"message_size_limit": "100000", "queue_minfree": "3000000"}, 452),
])
def test_queue_minfree_refuses_mail_from_as_postfix(postfix_factory, mta_factory, loopback,
                                                    tmpfs_queue, settings, expected):
    """The queue file system is a real 2 MB tmpfs for both servers (no fault injection)."""
    merged = {**SETTINGS, **settings}
    postfix = postfix_factory(merged, start=False)
    tmpfs_queue(postfix.queue_dir)
    postfix.start()
    mta = mta_factory(merged, start=False)
    tmpfs_queue(mta.queue_dir)
    mta.start()
    source = loopback.address()
    script = ["EHLO client.example", "MAIL FROM:<a@client.example>"]
    theirs = transcript(postfix, source, script)
    try:
        ours = transcript(mta, source, script)
    finally:
        mta.stop()
        postfix.stop()
    assert ours == theirs
    assert ours[1].startswith(str(expected))
    if expected == 452:
        assert ours[1] == "452 4.3.1 Insufficient system storage"
