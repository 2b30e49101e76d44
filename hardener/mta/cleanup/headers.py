"""cleanup's reading of the primary message header, as Postfix's mime_state does it.

Content arrives in chunks of LF-terminated lines (from smtpd or pickup), cut anywhere. HeaderReader
returns each logical header (a header line and its continuation lines) once it is complete, then
the body. What Postfix does and this module copies:

- A header line is `name:` with a name of printable ASCII other than ':' (optionally followed by
  spaces or tabs before the colon); lines starting with a space or tab continue the header before.
- header_size_limit: a header is stored in records of at most line_length_limit bytes (a longer
  line is several records); a record is kept only while the header holds fewer than
  header_size_limit bytes, the excess is discarded (the header is truncated, the mail accepted).
- The header ends at an empty line, which stays in the body; a line that is neither a header nor a
  continuation also ends it, and a blank line is inserted before it (Postfix's "force output of
  one blank line").

SECURITY: the input is message content from the outside world. Memory is bounded: at most one
header (header_size_limit plus one record) and one record of a line being classified.
"""

from __future__ import annotations

import re

_HEADER = re.compile(rb"[!-9;-~]+[ \t]*:")


def is_header(line: bytes) -> bool:
    """True when `line` starts a message header (Postfix's is_header)."""
    return _HEADER.match(line) is not None


class HeaderReader:
    """Feed content; get the complete headers, then (once) the start of the body."""

    def __init__(self, header_limit: int, record_limit: int = 2048) -> None:
        self.header_limit = header_limit
        self.record_limit = max(record_limit, 1)
        self.done = False
        self.truncated = False          # some header lost bytes to header_size_limit
        self._current = bytearray()     # the logical header being collected
        self._pending = bytearray()     # the start of a line, until it can be classified
        self._line_pos = 0              # bytes of the current line consumed so far
        self._keep = False              # the current record goes into the header
        self._in_line = False           # in the middle of a line that belongs to _current
        self._body = bytearray()

    def feed(self, data: bytes) -> tuple[list[bytes], bytes | None]:
        """(headers completed, body start or None while the header may continue)."""
        headers: list[bytes] = []
        pos = 0
        while pos < len(data) and not self.done:
            nl = data.find(b"\n", pos)
            end = len(data) if nl < 0 else nl + 1
            self._segment(data[pos:end], nl >= 0, headers)
            pos = end
        if self.done:
            body = bytes(self._body) + data[pos:]
            self._body = bytearray()
            return headers, body
        return headers, None

    def finish(self) -> tuple[list[bytes], bytes]:
        """End of content inside the header: the last headers and whatever body there is."""
        headers: list[bytes] = []
        if self._pending:
            line, self._pending = bytes(self._pending), bytearray()
            self._start_line(line, False, headers)
        if not self.done:
            self._flush(headers)
            self.done = True
        body, self._body = bytes(self._body), bytearray()
        return headers, body

    # -- internals -------------------------------------------------------------------------------

    def _segment(self, seg: bytes, complete: bool, headers: list[bytes]) -> None:
        if self._in_line:
            self._append(seg)
            if complete:
                self._end_line()
            return
        self._pending += seg
        if not complete and len(self._pending) < self.record_limit:
            return   # too little of the line to tell what it is
        line, self._pending = bytes(self._pending), bytearray()
        self._start_line(line, complete, headers)

    def _start_line(self, line: bytes, complete: bool, headers: list[bytes]) -> None:
        if line in (b"\n", b""):
            self._flush(headers)
            self.done = True
            self._body += line
            return
        if line[:1] in (b" ", b"\t") and self._current:
            pass                                   # a continuation line
        elif is_header(line):
            self._flush(headers)
        else:
            self._flush(headers)
            self.done = True
            self._body += b"\n" + line             # Postfix's inserted blank line
            return
        self._line_pos = 0
        self._in_line = True
        self._append(line)
        if complete:
            self._end_line()

    def _append(self, piece: bytes) -> None:
        """Add bytes of the current line record by record (header_size_limit)."""
        while piece:
            offset = self._line_pos % self.record_limit
            if offset == 0:   # a new record: kept while the header is under the limit
                stored = len(self._current) - (1 if self._current.endswith(b"\n") else 0)
                self._keep = stored < self.header_limit
                if not self._keep:
                    self.truncated = True
            take = min(len(piece), self.record_limit - offset)
            if self._keep:
                self._current += piece[:take]
            self._line_pos += take
            piece = piece[take:]

    def _end_line(self) -> None:
        self._in_line = False
        if self._current and not self._current.endswith(b"\n"):
            self._current += b"\n"   # the end of the line was discarded

    def _flush(self, headers: list[bytes]) -> None:
        if self._current:
            if not self._current.endswith(b"\n"):
                self._current += b"\n"
            headers.append(bytes(self._current))
            self._current = bytearray()
