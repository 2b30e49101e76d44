"""DATA content parser: finds the one standard end-of-data, dot-unstuffs, normalises line ends.

Works on chunks as they arrive (never on the whole message). Only <CR><LF>.<CR><LF> ends a message
(or ".<CR><LF>" as the first line); the non-standard forms used for SMTP smuggling (CVE-2023-51764:
<LF>.<LF>, <LF>.<CR><LF>, <CR>.<CR>, <CR><LF>.<LF>, ...) are content. A bare <LF> or bare <CR> is
recorded; in "reject" mode smtpd refuses the message, in "normalize" mode a bare <LF> ends a line as
<CR><LF> would and a bare <CR> becomes a line end too, so no lone <CR> reaches the queue file.
Output is LF-terminated lines (the queue file's content form).

SECURITY: input is raw bytes from the network. Memory is bounded: at most one chunk plus a partial
line of at most `max_partial` bytes is held.
"""

from __future__ import annotations


class DataParser:
    """Feed raw DATA bytes; get content out and, once, the bytes after the end-of-data."""

    def __init__(self, max_partial: int = 65536) -> None:
        self.max_partial = max_partial
        self.at_line_start = True   # the next byte starts a line
        self.prev_crlf = True       # the line before ended in <CR><LF> (or DATA just started)
        self.carry = b""
        self.bare_lf = False
        self.bare_cr = False
        self.done = False

    def feed(self, data: bytes) -> tuple[bytes, bytes | None]:
        """Return (content, leftover): leftover is None until the end-of-data was seen, then the
        bytes that followed it (pipelined commands)."""
        buf = self.carry + data if self.carry else data
        self.carry = b""
        last_nl = buf.rfind(b"\n")
        if last_nl < 0:
            if len(buf) > self.max_partial:
                # a very long line: pass most of it on, keep one byte (it may be the CR of CRLF)
                out = self._partial(buf[:-1])
                self.carry = buf[-1:]
                return out, None
            self.carry = buf
            return b"", None
        seg, rest = buf[:last_nl + 1], buf[last_nl + 1:]
        end = -1
        if self.at_line_start and self.prev_crlf and seg.startswith(b".\r\n"):
            end = 0
        else:
            i = seg.find(b"\r\n.\r\n")
            if i >= 0:
                end = i + 2
        if end >= 0:
            content = self._lines(seg[:end]) if end else b""
            self.done = True
            return content, seg[end + 3:] + rest
        out = self._lines(seg)
        self.carry = rest
        if len(self.carry) > self.max_partial:
            more, _ = self.feed(b"")
            out += more
        return out, None

    def _partial(self, part: bytes) -> bytes:
        """Content in the middle of a line (no LF inside)."""
        if self.at_line_start and part.startswith(b"."):
            part = part[1:]
        if b"\r" in part:
            self.bare_cr = True
            part = part.replace(b"\r", b"\n")
        self.at_line_start = False
        return part

    def _lines(self, c: bytes) -> bytes:
        """Complete lines (c ends with LF)."""
        ends_crlf = c.endswith(b"\r\n")
        n_lf = c.count(b"\n")
        n_crlf = c.count(b"\r\n")
        if n_lf != n_crlf:
            self.bare_lf = True
        if c.count(b"\r") != n_crlf:
            self.bare_cr = True
        if self.at_line_start and c.startswith(b"."):
            c = c[1:]
        if b"\n." in c:
            c = c.replace(b"\n.", b"\n")
        c = c.replace(b"\r\n", b"\n")
        if b"\r" in c:
            c = c.replace(b"\r", b"\n")
        self.at_line_start = True
        self.prev_crlf = ends_crlf
        return c
