"""Queue file format: a human-readable envelope, a blank line, then the message content.

    hardener-queue-file: 1
    queue-id: 18F3A2B4C5D6E7F80
    arrival: 1764091234.123456
    sender: alice@example.com          (empty value = the null sender <>)
    recipient: bob@example.net orcpt=rfc822;bob@example.net notify=FAILURE,DELAY
    client-name: mail.example.com
    client-address: 192.0.2.1
    helo: mail.example.com
    protocol: ESMTP
    size: 1234                         (bytes of content below, LF line endings)
    flags: bounce                      (comma-separated; optional)
    <blank line>
    Received: from ...
    <content>

Values are percent-encoded: '%', controls, space and bytes >= 0x7f become %XX, so a value is one
token, and an address with a space in a quoted local part survives. Addresses are stored in Postfix's
internal (unquoted) form, as Postfix's queue files hold them: `"x y"@example.net` is stored as
`x%20y@example.net`, and every writer of an SMTP command, header or log line quotes it again
(hardener.mta.address_form). The content is stored with LF line
endings (each CRLF of the SMTP stream becomes LF, dot-unstuffed); delivery agents write CRLF again.

SECURITY: read_envelope() trusts nothing in the file: every field is checked and anything malformed
raises QueueFileError (the caller moves the file to corrupt/). Only hardener.mta.cleanup.service writes
queue files (through format_envelope()).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from hardener.mta.queue.layout import valid_queue_id

FORMAT_VERSION = 1
MAGIC = b"hardener-queue-file"
MAX_ENVELOPE_BYTES = 4 * 1024 * 1024  # 1000s of recipients fit; a runaway file does not
_KNOWN_FLAGS = {"bounce", "local"}


class QueueFileError(Exception):
    """A queue file that cannot be parsed; the file belongs in corrupt/."""


@dataclass(frozen=True)
class Recipient:
    """One envelope recipient with its DSN parameters (RFC 3461)."""

    address: str
    orcpt: str | None = None
    notify: str | None = None


@dataclass
class Envelope:
    """The envelope of one queued message."""

    queue_id: str
    arrival: float
    sender: str
    recipients: list[Recipient]
    client_name: str = "localhost"
    client_address: str = "127.0.0.1"
    helo: str = ""
    protocol: str = "ESMTP"
    size: int = 0
    flags: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_bounce(self) -> bool:
        """True for a DSN hardener generated (bounce never answers one)."""
        return "bounce" in self.flags


def encode_value(value: str) -> str:
    """Percent-encode a field value so that it is one printable token.

    Every byte a value can hold round-trips through decode_value, newlines and spaces included, so
    no address can start a field or a line of its own. A value that is not text at all (a lone
    surrogate that no input decoding produces) raises QueueFileError instead of being altered.
    """
    try:
        raw = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise QueueFileError(f"value {value[:60]!r} cannot be stored") from None
    out = []
    for b in raw:
        if b <= 0x20 or b >= 0x7F or b == 0x25:
            out.append(f"%{b:02X}")
        else:
            out.append(chr(b))
    return "".join(out)


def decode_value(token: str) -> str:
    """Inverse of encode_value; raises QueueFileError on a malformed escape."""
    if "%" not in token:
        return token
    out = bytearray()
    i = 0
    data = token.encode("ascii", "strict")
    while i < len(data):
        b = data[i]
        if b == 0x25:
            hexpart = data[i + 1:i + 3]
            try:
                out.append(int(hexpart, 16))
            except ValueError:
                raise QueueFileError(f"bad escape in value {token!r}") from None
            if len(hexpart) != 2:
                raise QueueFileError(f"bad escape in value {token!r}")
            i += 3
        else:
            out.append(b)
            i += 1
    return out.decode("utf-8", "surrogateescape")


def format_envelope(env: Envelope) -> bytes:
    """The envelope header block (ending with the blank line) for `env`."""
    lines = [
        f"{MAGIC.decode()}: {FORMAT_VERSION}",
        f"queue-id: {env.queue_id}",
        f"arrival: {env.arrival:.6f}",
        f"sender: {encode_value(env.sender)}".rstrip(" "),
    ]
    for rcpt in env.recipients:
        line = f"recipient: {encode_value(rcpt.address)}"
        if rcpt.orcpt:
            line += f" orcpt={encode_value(rcpt.orcpt)}"
        if rcpt.notify:
            line += f" notify={encode_value(rcpt.notify)}"
        lines.append(line)
    lines += [
        f"client-name: {encode_value(env.client_name)}",
        f"client-address: {encode_value(env.client_address)}",
        f"helo: {encode_value(env.helo)}".rstrip(" "),
        f"protocol: {encode_value(env.protocol)}",
        f"size: {env.size}",
    ]
    if env.flags:
        lines.append("flags: " + ",".join(sorted(env.flags)))
    return ("\n".join(lines) + "\n\n").encode("ascii")


def _parse_header(block: bytes, source: str) -> Envelope:
    try:
        text = block.decode("ascii")
    except UnicodeDecodeError:
        raise QueueFileError(f"{source}: non-ASCII byte in envelope") from None
    fields: dict[str, str] = {}
    recipients: list[Recipient] = []
    for n, line in enumerate(text.split("\n"), 1):
        name, sep, value = line.partition(": ")
        if not sep:
            name, sep, value = line.partition(":")
            if not sep or value:
                raise QueueFileError(f"{source}: envelope line {n} is not 'name: value'")
        if name == "recipient":
            tokens = value.split(" ")
            params: dict[str, str] = {}
            for tok in tokens[1:]:
                key, eq, val = tok.partition("=")
                if not eq or key not in ("orcpt", "notify") or key in params:
                    raise QueueFileError(f"{source}: bad recipient parameter {tok!r}")
                params[key] = decode_value(val)
            if not tokens[0]:
                raise QueueFileError(f"{source}: empty recipient")
            recipients.append(Recipient(decode_value(tokens[0]), params.get("orcpt"),
                                        params.get("notify")))
        elif name in fields:
            raise QueueFileError(f"{source}: duplicate field {name!r}")
        else:
            fields[name] = value
    if fields.get(MAGIC.decode()) != str(FORMAT_VERSION):
        raise QueueFileError(f"{source}: not a version {FORMAT_VERSION} hardener queue file")
    required = ("queue-id", "arrival", "sender", "client-name", "client-address", "helo",
                "protocol", "size")
    for name in required:
        if name not in fields:
            raise QueueFileError(f"{source}: missing field {name!r}")
    unknown = set(fields) - set(required) - {MAGIC.decode(), "flags"}
    if unknown:
        raise QueueFileError(f"{source}: unknown field {sorted(unknown)[0]!r}")
    if not recipients:
        raise QueueFileError(f"{source}: no recipients")
    qid = fields["queue-id"]
    if not valid_queue_id(qid):
        raise QueueFileError(f"{source}: malformed queue id {qid!r}")
    try:
        arrival = float(fields["arrival"])
        size = int(fields["size"])
    except ValueError:
        raise QueueFileError(f"{source}: arrival or size is not a number") from None
    if size < 0 or arrival < 0:
        raise QueueFileError(f"{source}: negative arrival or size")
    flags = frozenset(f for f in fields.get("flags", "").split(",") if f)
    if not flags <= _KNOWN_FLAGS:
        raise QueueFileError(f"{source}: unknown flag in {fields['flags']!r}")
    return Envelope(queue_id=qid, arrival=arrival, sender=decode_value(fields["sender"]),
                    recipients=recipients, client_name=decode_value(fields["client-name"]),
                    client_address=decode_value(fields["client-address"]),
                    helo=decode_value(fields["helo"]), protocol=decode_value(fields["protocol"]),
                    size=size, flags=flags)


def _read_header_block(f: BinaryIO, source: str) -> bytes:
    head = f.read(len(MAGIC))
    if head != MAGIC:
        raise QueueFileError(f"{source}: not a hardener queue file")
    buf = bytearray(head)
    while True:
        chunk = f.read(8192)
        if not chunk:
            raise QueueFileError(f"{source}: truncated envelope (no blank line)")
        start = max(0, len(buf) - 1)
        buf += chunk
        end = buf.find(b"\n\n", start)
        if end >= 0:
            f.seek(end + 2)
            return bytes(buf[:end])
        if len(buf) > MAX_ENVELOPE_BYTES:
            raise QueueFileError(f"{source}: envelope larger than {MAX_ENVELOPE_BYTES} bytes")


def read_envelope(path: str | os.PathLike[str]) -> Envelope:
    """Parse the envelope of the queue file at `path`; QueueFileError if anything is malformed.

    Also checks that the queue id inside matches the file name and that the content has the
    recorded size, so a truncated file is caught before delivery.
    """
    p = Path(path)
    try:
        with open(p, "rb") as f:
            env = _parse_header(_read_header_block(f, p.name), p.name)
            content_start = f.tell()
            total = os.fstat(f.fileno()).st_size
    except OSError as exc:
        raise QueueFileError(f"{p.name}: cannot read: {exc.strerror}") from exc
    if env.queue_id != p.name:
        raise QueueFileError(f"{p.name}: queue id inside is {env.queue_id}")
    if total - content_start != env.size:
        raise QueueFileError(f"{p.name}: content is {total - content_start} bytes, "
                             f"envelope says {env.size}")
    return env


def open_content(path: str | os.PathLike[str]) -> BinaryIO:
    """Open the queue file at `path` and return it positioned at the first content byte."""
    f = open(path, "rb")
    try:
        _read_header_block(f, Path(path).name)
    except BaseException:
        f.close()
        raise
    return f


def parse_bytes(data: bytes, name: str = "<bytes>") -> tuple[Envelope, bytes]:
    """Parse a whole queue file held in memory (for tests and tools): (envelope, content)."""
    f = io.BytesIO(data)
    env = _parse_header(_read_header_block(f, name), name)
    return env, f.read()
