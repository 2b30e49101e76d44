"""Mail log lines have Postfix's exact format: the same session against a real Postfix and against
hardener gives the same smtpd and cleanup lines (the host, program and pid, and the queue ids, differ
by nature), with the same time stamp form. Both daemons run under a faked clock (tests/fixtures/clock.py)
on a day 1-9 and a day 10-31, since Postfix's maillog_file pads the day with a zero and syslog with
a space: a test on today's date would only see one of the two."""

from __future__ import annotations

import re
import time

import pytest

from tests.fixtures.clock import faked_clock_env
from tests.fixtures.mta import SmtpClient

SETTINGS = {
    "myhostname": "mx.hardener.test", "mydomain": "hardener.test",
    "mydestination": "$myhostname, localhost", "mynetworks": "127.0.0.1/32",
    "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
    "compatibility_level": "3.6", "inet_protocols": "ipv4",
}
LINE = re.compile(r"^(?P<stamp>[A-Z][a-z]{2} [ 0-3]\d \d\d:\d\d:\d\d) (?P<host>\S+) "
                  r"(?P<name>postfix|hardener)/(?P<prog>smtpd|cleanup)\[(?P<pid>\d+)\]: "
                  r"(?P<text>.*)$")
KINDS = re.compile(r"^(connect from |disconnect from |\w+: client=|NOQUEUE: reject: |"
                   r"\w+: message-id=)")


def dialog(address: str, port: int, source: str) -> None:
    with SmtpClient(address, port, source=source) as c:
        c.greeting()
        c.cmd("EHLO client.example")
        c.cmd("MAIL FROM:<sender@client.example>")
        c.cmd("RCPT TO:<user@foreign.example>")
        c.cmd("RCPT TO:<root@mx.hardener.test>")
        c.cmd("DATA")
        c.send_raw(b"Subject: log test\r\nMessage-ID: <log-test@client.example>\r\n\r\nhi\r\n.\r\n")
        c.read_reply()
        c.cmd("QUIT")


def normalised(log: str, prog_name: str, day: str) -> list[tuple[str, str]]:
    """(program, text) of the lines of interest; every stamp must be on `day` ("Dec 03")."""
    out = []
    for line in log.splitlines():
        m = LINE.match(line)
        if not m or not KINDS.match(m.group("text")):
            continue
        assert m.group("name") == prog_name
        assert m.group("stamp").startswith(day + " "), line
        text = re.sub(r"^[0-9A-F]{6,}:", "QID:", m.group("text"))
        out.append((m.group("prog"), text))
    return out


@pytest.mark.parametrize("day", [3, 17], ids=["day-1-9", "day-10-31"])
def test_log_lines_match_postfix(postfix_factory, mta_factory, loopback, day):
    clock = faked_clock_env(2026, 12, day)
    postfix = postfix_factory(SETTINGS, env=clock)
    mta = mta_factory(SETTINGS, env=clock)
    source = loopback.address()
    dialog(postfix.address, postfix.port, source)
    dialog(mta.address, mta.port, source)
    mta.wait_for_log(f"disconnect from unknown[{source}]")
    deadline = time.monotonic() + 20   # Postfix's postlogd writes asynchronously
    while f"disconnect from unknown[{source}]" not in postfix.maillog_text() \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    stamp_day = f"Dec {day:02d}"   # postlogd's maillog_file form, zero-padded
    theirs = normalised(postfix.maillog_text(), "postfix", stamp_day)
    ours = normalised(mta.log_text(), "hardener", stamp_day)
    theirs = [x for x in theirs if source in x[1] or "log-test@client.example" in x[1]]
    ours = [x for x in ours if source in x[1] or "log-test@client.example" in x[1]]
    assert len(ours) == 5, ours
    assert sorted(ours) == sorted(theirs), (ours, theirs)
    print(ours)
    # the host field is the first label of myhostname, as Postfix prints it
    assert " mx hardener/smtpd[" in mta.log_text()
