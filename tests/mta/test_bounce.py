"""bounce: the DSN is a well-formed RFC 3464 multipart/report; never for <> or for a bounce."""

from __future__ import annotations

import email
import email.policy

from hardener.mta.bounce import (FailedRecipient, build_dsn, read_original_headers,
                                 should_bounce, wants_failure_notice)
from hardener.mta.queue.file import Envelope, Recipient


def _env(sender="alice@example.org", flags=frozenset()):
    return Envelope(queue_id="0123456789ABCDEF0", arrival=1700000000.0, sender=sender,
                    recipients=[Recipient("bob@example.net", "rfc822;Bob@example.net")],
                    flags=flags)


def test_dsn_structure():
    headers = b"From: alice@example.org\nSubject: hello\nMessage-Id: <x@example.org>\n"
    failed = [FailedRecipient("bob@example.net", "5.1.1", "host mx[192.0.2.1]:25 said: 550 "
                              "5.1.1 no such user (in reply to RCPT TO command)",
                              "smtp; 550 5.1.1 no such user", "mx.example.net",
                              "rfc822;Bob@example.net")]
    raw = build_dsn(_env(), failed, headers, myhostname="mx.example.com", now=1700000100.0)
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    assert msg["To"] == "alice@example.org" and msg["Auto-Submitted"] == "auto-replied"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "message/delivery-status",
                                                     "text/rfc822-headers"]
    assert "<bob@example.net>: host mx[192.0.2.1]:25 said: 550" in parts[0].get_content()
    status = parts[1].as_string()
    for line in ("Reporting-MTA: dns; mx.example.com", "Final-Recipient: rfc822; bob@example.net",
                 "Original-Recipient: rfc822;Bob@example.net", "Action: failed",
                 "Status: 5.1.1", "Remote-MTA: dns; mx.example.net",
                 "Diagnostic-Code: smtp; 550 5.1.1 no such user"):
        assert line in status
    assert "Message-Id: <x@example.org>" in parts[2].as_string()


def test_never_to_null_sender_or_for_a_bounce():
    assert should_bounce(_env()) is None
    assert "null sender" in should_bounce(_env(sender=""))
    assert "bounce" in should_bounce(_env(flags=frozenset({"bounce"})))


def test_notify_never_suppresses_the_notice():
    assert wants_failure_notice(Recipient("a@b"))
    assert wants_failure_notice(Recipient("a@b", notify="FAILURE,DELAY"))
    assert not wants_failure_notice(Recipient("a@b", notify="NEVER"))
    assert not wants_failure_notice(Recipient("a@b", notify="SUCCESS"))


def test_original_headers_are_bounded():
    import io

    data = b"Subject: x\n" + b"X-Long: " + b"a" * 200000 + b"\n\nbody\n"
    assert len(read_original_headers(io.BytesIO(data), limit=1000)) <= 1000
    assert read_original_headers(io.BytesIO(b"A: 1\nB: 2\n\nbody")) == b"A: 1\nB: 2\n"
