"""reject_unauth_pipelining: hardener's smtpd answers pipelined input as a real Postfix 3.7 does.

Postfix marks a session at its first improper pipelining (input pending after HELO, EHLO, DATA,
... or after any command before EHLO) and reject_unauth_pipelining then rejects at every later
check, DATA included, for the rest of the session. Each script is sent over a raw socket, chunk by
chunk, to both servers with the same main.cf; the replies must be equal (EHLO: code only).
"""

from __future__ import annotations

import pytest

from tests.fixtures.mta import SmtpClient

SETTINGS = {
    "myhostname": "mx.hardener.test", "mydomain": "hardener.test",
    "mydestination": "$myhostname, localhost", "mynetworks": "127.0.0.1/32",
    "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
    "smtpd_data_restrictions": "reject_unauth_pipelining",
    "compatibility_level": "3.6", "inet_protocols": "ipv4",
}
HELO = b"HELO client.example\r\n"
EHLO = b"EHLO client.example\r\n"
MAIL = b"MAIL FROM:<a@client.example>\r\n"
RCPT = b"RCPT TO:<postmaster@mx.hardener.test>\r\n"
DATA = b"DATA\r\n"
CONTENT = b"Subject: pipelined\r\n\r\nbody\r\n.\r\n"
# (name, chunks): each chunk is one write; the test waits for all its replies before the next
SCRIPTS = [
    ("audit probe: HELO MAIL RCPT DATA in one write", [HELO + MAIL + RCPT + DATA]),
    ("EHLO MAIL RCPT DATA in one write", [EHLO + MAIL + RCPT + DATA]),
    ("EHLO, then MAIL RCPT DATA (authorized)", [EHLO, MAIL + RCPT + DATA]),
    ("HELO, then MAIL RCPT DATA", [HELO, MAIL + RCPT + DATA]),
    ("HELO, then MAIL RCPT, then DATA", [HELO, MAIL + RCPT, DATA]),
    ("EHLO, then MAIL RCPT DATA content", [EHLO, MAIL + RCPT + DATA + CONTENT]),
    ("HELO NOOP, then lock-step", [HELO + b"NOOP\r\n", MAIL, RCPT, DATA]),
    ("EHLO NOOP, then lock-step", [EHLO + b"NOOP\r\n", MAIL, RCPT, DATA]),
    ("EHLO, RSET NOOP, then lock-step", [EHLO, b"RSET\r\nNOOP\r\n", MAIL, RCPT, DATA]),
    ("HELO EHLO, then lock-step", [HELO + EHLO, MAIL, RCPT, DATA]),
    ("HELO, lock-step (no pipelining)", [HELO, MAIL, RCPT, DATA]),
]


def _replies(address: str, port: int, source: str, chunks: list[bytes]) -> list[str]:
    out: list[str] = []
    with SmtpClient(address, port, source=source) as c:
        c.greeting()
        for chunk in chunks:
            c.send_raw(chunk)
            expected = 4 if chunk.endswith(CONTENT) else chunk.count(b"\r\n")
            for _ in range(expected):
                code, text = c.read_reply()
                out.append(str(code) if text.startswith("250-") else text)
                if code == 354:     # never leave a half-sent message: end it cleanly
                    c.send_raw(b".\r\n")
                    c.read_reply()
    return out


@pytest.mark.parametrize("restrictions", [
    {},
    {"smtpd_recipient_restrictions": "reject_unauth_pipelining"},
], ids=["data", "data+recipient"])
def test_pipelining_replies_equal_postfix(postfix_factory, mta_factory, loopback, restrictions):
    settings = SETTINGS | restrictions
    postfix = postfix_factory(settings)
    mta = mta_factory(settings)
    source = loopback.address()
    for name, chunks in SCRIPTS:
        theirs = _replies(postfix.address, postfix.port, source, chunks)
        ours = _replies(mta.address, mta.port, source, chunks)
        assert ours == theirs, f"{name}: ours {ours}, Postfix {theirs}"
    # the audit's probe never reaches 354: refused at RCPT or at DATA
    probe = _replies(mta.address, mta.port, source, SCRIPTS[0][1])
    assert probe[-1].startswith(("503 5.5.0", "554 5.5.1")), probe


def test_pipelining_logged_once_per_session(mta_factory):
    mta = mta_factory(SETTINGS)
    with SmtpClient(mta.address, mta.port) as c:
        c.greeting()
        c.send_raw(HELO + b"NOOP\r\n")
        c.read_reply(), c.read_reply()
        c.send_raw(MAIL + RCPT)
        c.read_reply(), c.read_reply()
        assert c.cmd("DATA")[0] == 503
        c.cmd("QUIT")
    mta.wait_for_log("disconnect from", timeout=10)
    lines = [x for x in mta.log_text().splitlines() if "improper command pipelining" in x]
    assert len(lines) == 1 and "after HELO" in lines[0] and "NOOP" in lines[0]


def test_audit_finds_no_unauth_pipelining(mta_factory):
    """`hardener audit` (the real CLI) against the daemon: pipelining-unauth passes."""
    import json
    import subprocess
    import sys

    mta = mta_factory(SETTINGS)
    done = subprocess.run([sys.executable, "-m", "hardener", "audit", f"{mta.address}:{mta.port}",
                           "--format", "json"], capture_output=True, text=True, timeout=120)
    report = json.loads(done.stdout)
    status = {c["check"]: c for t in report["targets"] for c in t["checks"]}
    assert status["pipelining-unauth"]["status"] == "passed", (status, done.stderr)
    assert "Improper use of SMTP command pipelining" in status["pipelining-unauth"]["detail"]
