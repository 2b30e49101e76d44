"""header_size_limit as Postfix's cleanup applies it (mime_state_update): a header is kept record by
record (records of at most line_length_limit bytes) while it holds fewer than header_size_limit
bytes; the excess is discarded and the mail is accepted. Expected values below are worked out
from that rule; the end-to-end test checks the queued message of the real daemon."""

from __future__ import annotations

from hardener.mta.cleanup.headers import HeaderReader


def read_all(data: bytes, limit: int, record: int = 2048, chunk: int = 7):
    reader = HeaderReader(limit, record)
    headers, body = [], None
    for i in range(0, len(data), chunk):      # cut anywhere, as chunks arrive
        got, rest = reader.feed(data[i:i + chunk])
        headers += got
        if rest is not None:
            body = rest + data[i + chunk:]
            break
    if body is None:
        got, body = reader.finish()
        headers += got
    return headers, body, reader.truncated


def test_long_single_line_header_keeps_whole_records():
    subject = b"Subject: " + b"s" * 2991 + b"\n"          # 3000 bytes + LF: records 2048 + 952
    headers, body, truncated = read_all(subject + b"To: a@b\n\nbody\n", 1000)
    assert headers == [b"Subject: " + b"s" * 2039 + b"\n", b"To: a@b\n"]
    assert body == b"\nbody\n" and truncated


def test_folded_header_keeps_lines_while_under_the_limit():
    lines = [b"X-Folded: " + b"f" * 89 + b"\n"] + [b"\t" + b"c" * 98 + b"\n"] * 30
    headers, body, truncated = read_all(b"".join(lines) + b"\nbody\n", 1000)
    # stored length after k lines: 99k + (k - 1) newlines = 999 after 10 (< 1000): an 11th is
    # added, then 1099 >= 1000 stops it
    assert headers == [b"".join(lines[:11])]
    assert truncated and body == b"\nbody\n"


def test_short_headers_untouched_and_garbage_line_gets_a_blank_line():
    data = b"From: a@b\nSubject: hi\n  folded\nthis is not a header\nmore\n"
    headers, body, truncated = read_all(data, 102400)
    assert headers == [b"From: a@b\n", b"Subject: hi\n  folded\n"]
    assert body == b"\nthis is not a header\nmore\n" and not truncated


def test_daemon_queues_the_message_with_the_header_truncated(mta_factory):
    from tests.fixtures.mta import SmtpClient

    mta = mta_factory({"header_size_limit": "1000"})
    with SmtpClient(mta.address, mta.port) as c:
        c.greeting()
        c.cmd("EHLO client.example")
        c.cmd("MAIL FROM:<a@client.example>")
        c.cmd("RCPT TO:<nobody@elsewhere.example>")     # relayed: stays in the queue
        assert c.cmd("DATA")[0] == 354
        c.send_raw(b"Subject: " + b"s" * 5000 + b"\r\nMessage-ID: <trunc@client.example>\r\n"
                   b"\r\nbody\r\n.\r\n")
        assert c.read_reply()[0] == 250
    log = mta.wait_for_log("message header length exceeds safety limit")
    assert "message-id=<trunc@client.example>" in log
