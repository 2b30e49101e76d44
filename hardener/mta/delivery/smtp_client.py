"""A small asyncio SMTP client: one connection to one next-hop server.

SECURITY: talks to the outside world (the next hop); trusts nothing it reads. Replies are parsed with
bounded line lengths and a bounded number of lines; every read and write has a timeout. Runs inside
the daemon process with the daemon's privileges and touches no file except the queue file it is asked
to send (opened by the caller).

Used by hardener.mta.delivery.smtp, which decides where to connect and what the results mean.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from dataclasses import dataclass, field
from typing import BinaryIO

_MAX_REPLY_LINE = 4096
_MAX_REPLY_LINES = 200
_CHUNK = 64 * 1024
_SMALL = 256 * 1024


class HopError(Exception):
    """The session with a next hop failed as a whole (connection, greeting, TLS, lost connection).

    `dsn` is the enhanced status code for the recipients; `permanent` says whether to bounce them.
    `hop_dead` marks failures that mean the destination is unreachable (dead-destination cache).
    """

    def __init__(self, reason: str, dsn: str = "4.4.1", *, permanent: bool = False,
                 hop_dead: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.dsn = dsn
        self.permanent = permanent
        self.hop_dead = hop_dead


@dataclass
class Timeouts:
    """Postfix's smtp_*_timeout parameters (seconds)."""

    connect: float = 30.0
    helo: float = 300.0
    mail: float = 300.0
    rcpt: float = 300.0
    data_init: float = 120.0
    data_xfer: float = 180.0
    data_done: float = 600.0
    quit: float = 300.0
    rset: float = 20.0
    starttls: float = 300.0


@dataclass
class Reply:
    """One SMTP reply: code and the text lines (without the code)."""

    code: int
    lines: list[str]

    @property
    def text(self) -> str:
        """The reply as Postfix logs it: `250 2.0.0 Ok` (continuation lines joined by spaces)."""
        return f"{self.code} " + " ".join(self.lines).strip()


@dataclass
class SmtpConnection:
    """An open SMTP session; `relay` is the log form `host[addr]:port`."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    host: str
    addr: str
    port: int
    timeouts: Timeouts
    features: dict[str, str] = field(default_factory=dict)
    tls: str = ""
    opened: float = field(default_factory=time.monotonic)
    idle_since: float = field(default_factory=time.monotonic)
    transactions: int = 0
    broken: bool = False

    @property
    def relay(self) -> str:
        return f"{self.host}[{self.addr}]:{self.port}"

    # -- low level ---------------------------------------------------------------------------
    async def read_reply(self, timeout: float) -> Reply:
        """Read one (possibly multi-line) reply; HopError on timeout, EOF or garbage."""
        lines: list[str] = []
        code = 0
        try:
            while True:
                raw = await asyncio.wait_for(self.reader.readline(), timeout)
                if not raw:
                    raise HopError(f"lost connection with {self.relay}", hop_dead=False)
                if len(raw) > _MAX_REPLY_LINE:
                    raise HopError(f"reply line too long from {self.relay}", hop_dead=False)
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if len(line) < 3 or not line[:3].isdigit() or (len(line) > 3 and line[3] not in " -"):
                    raise HopError(f"malformed reply from {self.relay}: {line[:80]!r}",
                                   hop_dead=False)
                this_code = int(line[:3])
                if code and this_code != code:
                    raise HopError(f"inconsistent reply codes from {self.relay}", hop_dead=False)
                code = this_code
                lines.append(line[4:])
                if len(lines) > _MAX_REPLY_LINES:
                    raise HopError(f"reply too long from {self.relay}", hop_dead=False)
                if len(line) == 3 or line[3] == " ":
                    return Reply(code, lines)
        except asyncio.TimeoutError:
            raise HopError(f"conversation with {self.relay} timed out while receiving reply",
                           hop_dead=False) from None
        except (ConnectionError, OSError, ssl.SSLError) as exc:
            raise HopError(f"lost connection with {self.relay}: {exc}", hop_dead=False) from None

    async def send(self, data: bytes, timeout: float) -> None:
        """Write bytes and wait until the transport buffer drains."""
        try:
            self.writer.write(data)
            await asyncio.wait_for(self.writer.drain(), timeout)
        except asyncio.TimeoutError:
            raise HopError(f"conversation with {self.relay} timed out while sending",
                           hop_dead=False) from None
        except (ConnectionError, OSError, ssl.SSLError) as exc:
            raise HopError(f"lost connection with {self.relay}: {exc}", hop_dead=False) from None

    async def command(self, line: str, timeout: float) -> Reply:
        """Send one command line and read its reply."""
        await self.send(line.encode("utf-8") + b"\r\n", timeout)
        return await self.read_reply(timeout)

    # -- session -------------------------------------------------------------------------------
    async def ehlo(self, helo_name: str) -> None:
        """EHLO (HELO if EHLO is refused); records the advertised extensions."""
        reply = await self.command(f"EHLO {helo_name}", self.timeouts.helo)
        if reply.code == 250:
            self.features = {}
            for line in reply.lines[1:]:
                word, _, arg = line.partition(" ")
                self.features[word.upper()] = arg
            return
        reply = await self.command(f"HELO {helo_name}", self.timeouts.helo)
        if reply.code != 250:
            raise HopError(f"host {self.relay} refused to talk to me: {reply.text}",
                           f"{str(reply.code)[0]}.0.0" if reply.code >= 400 else "4.0.0")
        self.features = {}

    async def starttls(self, context: ssl.SSLContext, server_hostname: str | None) -> None:
        """STARTTLS, the TLS handshake and a new EHLO is left to the caller."""
        reply = await self.command("STARTTLS", self.timeouts.starttls)
        if reply.code != 220:
            raise HopError(f"STARTTLS refused by {self.relay}: {reply.text}", "4.7.5",
                           hop_dead=False)
        try:
            await asyncio.wait_for(
                self.writer.start_tls(context, server_hostname=server_hostname),
                self.timeouts.starttls)
        except (asyncio.TimeoutError, ssl.SSLError, ConnectionError, OSError) as exc:
            self.broken = True
            raise HopError(f"TLS handshake with {self.relay} failed: {exc}", "4.7.5") from None
        sslobj = self.writer.get_extra_info("ssl_object")
        if sslobj is not None:
            cipher = sslobj.cipher()
            self.tls = f"{sslobj.version()} with cipher {cipher[0] if cipher else '?'}"

    async def rset(self) -> bool:
        """RSET; False when the session is no longer usable."""
        try:
            reply = await self.command("RSET", self.timeouts.rset)
        except HopError:
            self.broken = True
            return False
        if reply.code != 250:
            self.broken = True
        return not self.broken

    async def quit(self) -> None:
        """QUIT and close, ignoring every error (the session is over either way)."""
        try:
            if not self.broken and not self.writer.is_closing():
                self.writer.write(b"QUIT\r\n")
                await asyncio.wait_for(self.reader.readline(), 2.0)
        except Exception:  # noqa: BLE001 - closing anyway
            pass
        self.close()

    def close(self) -> None:
        """Close the socket now."""
        self.broken = True
        try:
            self.writer.close()
        except Exception:  # noqa: BLE001
            pass

    def usable(self) -> bool:
        """Whether the session can carry another transaction."""
        return not self.broken and not self.writer.is_closing() and not self.reader.at_eof()


async def open_connection(host: str, addr: str, port: int, timeouts: Timeouts,
                          source_address: str | None = None) -> SmtpConnection:
    """Connect to addr:port and read the greeting; HopError when the server is not usable."""
    relay = f"{host}[{addr}]:{port}"
    local = (source_address, 0) if source_address else None
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(addr, port, local_addr=local, limit=_MAX_REPLY_LINE * 2),
            timeouts.connect)
    except asyncio.TimeoutError:
        raise HopError(f"connect to {relay}: Connection timed out", "4.4.1") from None
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else (exc.strerror or str(exc))
        raise HopError(f"connect to {relay}: {reason}", "4.4.1") from None
    conn = SmtpConnection(reader, writer, host, addr, port, timeouts)
    try:
        greeting = await conn.read_reply(timeouts.helo)
    except HopError as exc:
        conn.close()
        raise HopError(exc.reason, "4.4.2") from None
    if greeting.code != 220:
        await conn.quit()
        # Like Postfix (smtp_skip_5xx_greeting = yes) a refusing greeting only skips this server.
        raise HopError(f"host {relay} refused to talk to me: {greeting.text}", "4.3.0")
    return conn


def dot_stuff_lines(content: BinaryIO):
    """Yield the message as SMTP DATA chunks: CRLF line ends, leading dots doubled.

    Reads the file in bounded pieces (a line longer than the buffer is passed on in pieces), so a
    message of any size needs only a bounded amount of memory. The final CRLF.CRLF is not included.
    """
    head = content.read(_SMALL)
    if len(head) < _SMALL:
        # Fast path for the usual small message: whole-buffer replaces instead of a loop per line.
        data = head.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if data.startswith(b"."):
            data = b"." + data
        data = data.replace(b"\r\n.", b"\r\n..")
        if data and not data.endswith(b"\r\n"):
            data += b"\r\n"
        if data:
            yield data
        return
    content.seek(-len(head), 1)
    at_line_start = True
    out: list[bytes] = []
    size = 0
    ended_with_newline = True
    while True:
        line = content.readline(_CHUNK)
        if not line:
            break
        if at_line_start and line.startswith(b"."):
            out.append(b".")
        if line.endswith(b"\n"):
            if not line.endswith(b"\r\n"):
                line = line[:-1] + b"\r\n"
            at_line_start = True
            ended_with_newline = True
        else:
            at_line_start = False
            ended_with_newline = False
        out.append(line)
        size += len(line)
        if size >= _CHUNK:
            yield b"".join(out)
            out, size = [], 0
    if not ended_with_newline:
        out.append(b"\r\n")
    if out:
        yield b"".join(out)
