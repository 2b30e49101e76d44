"""DataParser: only <CR><LF>.<CR><LF> ends DATA, whatever the chunking; bare <LF>/<CR> recorded."""

from __future__ import annotations

import pytest

from hardener.mta.smtpd.data import DataParser

SMUGGLING_FORMS = [b"\n.\n", b"\r.\r", b"\r.\n", b"\n.\r", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n",
                   b"\r\n.\r", b"\r\n\x00.\r\n", b"\r\n.\x00\r\n"]


def feed_all(data: bytes, chunk: int, max_partial: int = 65536):
    p = DataParser(max_partial=max_partial)
    out = b""
    for i in range(0, len(data), chunk):
        content, leftover = p.feed(data[i:i + chunk])
        out += content
        if leftover is not None:
            rest = leftover + data[i + chunk:]
            return out, rest, p
    return out, None, p


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 100000])
def test_standard_end_unstuffing_and_pipelined_rest(chunk):
    data = b"Subject: x\r\n\r\n..dotted\r\n.x\r\nline\r\n\r\n.\r\nQUIT\r\n"
    out, rest, p = feed_all(data, chunk)
    assert out == b"Subject: x\n\n.dotted\nx\nline\n\n"
    assert rest == b"QUIT\r\n" and not p.bare_lf and not p.bare_cr


@pytest.mark.parametrize("form", SMUGGLING_FORMS)
@pytest.mark.parametrize("chunk", [1, 5, 100000])
def test_smuggling_forms_never_end_the_message(form, chunk):
    data = b"Subject: x\r\n\r\nbody" + form + b"MAIL FROM:<evil@example.com>\r\nend\r\n.\r\n"
    out, rest, _ = feed_all(data, chunk)
    assert rest == b""                      # ended only at the real end-of-data
    assert b"MAIL FROM:<evil@example.com>" in out and out.endswith(b"end\n")
    assert b"\r" not in out                 # normalised: no lone CR reaches the queue


def test_long_line_is_streamed_not_buffered():
    p = DataParser(max_partial=1000)
    out = b""
    for _ in range(100):
        content, leftover = p.feed(b"y" * 999)
        assert len(p.carry) <= 1000
        out += content
    content, leftover = p.feed(b"\r\n.\r\n")
    out += content
    assert leftover == b"" and out == b"y" * 99900 + b"\n"


def test_first_line_dot_ends_empty_message():
    out, rest, _ = feed_all(b".\r\nQUIT\r\n", 100)
    assert out == b"" and rest == b"QUIT\r\n"
