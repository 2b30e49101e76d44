"""An asyncio SMTP client for auditing: speaks the protocol exactly and trusts nothing it hears.

The probe sends one command and reads one reply at a time (no pipelining unless a check sends raw
bytes itself), parses multi-line replies and enhanced status codes (RFC 5321 4.2, RFC 3463), and
bounds everything: the connect, every reply (asyncio.wait_for), the length of a reply line and the
number of lines in one reply. Whatever goes wrong on the wire becomes a ProbeError subclass, never a
traceback. Every line sent and received is kept in `transcript` as evidence.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import ssl
import threading
from dataclasses import dataclass, field

MAX_LINE = 2048          # RFC 5321 allows 512 octets per reply line; be lenient, but bounded
MAX_REPLY_LINES = 100    # a reply longer than this is a flood, not SMTP
DEFAULT_TIMEOUT = 10.0

_REPLY_LINE = re.compile(r"^([2-5][0-9][0-9])([ -]|$)(.*)$")
_ENHANCED = re.compile(r"^([245]\.[0-9]{1,3}\.[0-9]{1,3})(?:\s|$)")

# Transcript directions
SENT = "C"       # client (the probe) to server
RECEIVED = "S"   # server to client
EVENT = "*"      # connect, TLS, close, errors


class ProbeError(Exception):
    """Base of every failure of a probe session; `kind` is a short stable label for reports."""

    kind = "error"

    def __str__(self) -> str:
        detail = super().__str__()
        return f"{self.kind}: {detail}" if detail else self.kind


class ConnectRefused(ProbeError):
    """Nothing listens (connection refused, no route, address unusable)."""

    kind = "unreachable"


class ProbeTimeout(ProbeError):
    """No answer within the timeout: on connect (filtered) or while waiting for a reply."""

    kind = "timeout"


class ConnectTimeout(ProbeTimeout):
    """The TCP connection was not established within the timeout (filtered)."""

    kind = "filtered"


class EarlyDisconnect(ProbeError):
    """The server closed the connection before the reply we waited for was complete."""

    kind = "early disconnect"


class GarbageReply(ProbeError):
    """The server sent something that is not an SMTP reply."""

    kind = "garbage"


class ReplyFlood(GarbageReply):
    """A reply line longer than MAX_LINE or a reply with more than MAX_REPLY_LINES lines."""

    kind = "reply flood"


class TLSFailed(ProbeError):
    """The TLS handshake after STARTTLS failed (protocol refused, certificate rejected, ...)."""

    kind = "tls handshake failed"


@dataclass(frozen=True)
class Reply:
    """One SMTP reply: the three-digit code, the enhanced status code if any, and its text lines."""

    code: int
    lines: tuple[str, ...]
    enhanced: str | None = None

    @property
    def text(self) -> str:
        """All text lines joined with spaces (enhanced code included, as the server sent it)."""
        return " ".join(line for line in self.lines).strip()

    @property
    def first_line(self) -> str:
        return f"{self.code} {self.lines[0]}".rstrip() if self.lines else str(self.code)

    @property
    def positive(self) -> bool:
        """2xx or 3xx."""
        return 200 <= self.code < 400

    @property
    def transient(self) -> bool:
        """4xx: refused for now."""
        return 400 <= self.code < 500

    @property
    def permanent(self) -> bool:
        """5xx."""
        return self.code >= 500

    def __str__(self) -> str:
        return " / ".join(f"{self.code} {line}".rstrip() for line in self.lines) or str(self.code)


def parse_reply_lines(raw_lines: list[str]) -> Reply:
    """A Reply from its complete lines (without CRLF); GarbageReply if they are not one SMTP reply."""
    code: str | None = None
    texts: list[str] = []
    for i, raw in enumerate(raw_lines):
        match = _REPLY_LINE.match(raw)
        if not match:
            raise GarbageReply(f"not an SMTP reply line: {_shorten(raw)!r}")
        if code is None:
            code = match.group(1)
        elif match.group(1) != code:
            raise GarbageReply(f"reply code changed inside a multi-line reply: {_shorten(raw)!r}")
        last = i == len(raw_lines) - 1
        if (match.group(2) == "-") == last:
            raise GarbageReply(f"bad multi-line reply continuation: {_shorten(raw)!r}")
        texts.append(match.group(3))
    if code is None:
        raise GarbageReply("empty reply")
    enhanced = None
    if code[0] in "245" and texts:
        em = _ENHANCED.match(texts[0])
        if em and em.group(1)[0] == code[0]:
            enhanced = em.group(1)
    return Reply(int(code), tuple(texts), enhanced)


async def resolve_host(host: str, port: int, timeout: float,
                       source_address: str | None = None) -> list[str]:
    """The addresses to try: `host` itself if it is an IP address, else its addresses (of the
    source address's family, if one is given) from the system resolver, in its order.

    The lookup runs in a daemon thread and is abandoned after `timeout`, so a resolver that never
    answers cannot hold the audit (or the process exit) hostage, as asyncio's executor would.
    """
    try:
        ipaddress.ip_address(host.split("%")[0])
        return [host]
    except ValueError:
        pass
    family = socket.AF_UNSPEC
    if source_address:
        family = socket.AF_INET6 if ":" in source_address else socket.AF_INET
    loop = asyncio.get_running_loop()
    future: asyncio.Future[list[str]] = loop.create_future()

    def deliver(setter: str, value: object) -> None:
        if not future.done():
            getattr(future, setter)(value)

    def lookup() -> None:
        try:
            infos = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
            result: tuple[str, object] = ("set_result", [str(info[4][0]) for info in infos])
        except OSError as exc:
            result = ("set_exception", exc)
        try:
            loop.call_soon_threadsafe(deliver, *result)
        except RuntimeError:  # the loop is gone: nobody waits for this answer any more
            pass

    threading.Thread(target=lookup, name=f"resolve {host}", daemon=True).start()
    try:
        addresses = await asyncio.wait_for(future, timeout)
    except asyncio.TimeoutError:
        raise ConnectTimeout(f"{host}: no answer from the resolver within {timeout:g}s") from None
    except OSError as exc:
        raise ConnectRefused(f"{host}:{port}: {exc.strerror or exc}") from None
    return list(dict.fromkeys(addresses))


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


@dataclass
class Probe:
    """A connected SMTP client session. Create with `await Probe.connect(...)`."""

    host: str
    port: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    timeout: float = DEFAULT_TIMEOUT
    source_address: str | None = None
    transcript: list[tuple[str, str]] = field(default_factory=list)
    greeting: Reply | None = None
    ehlo_reply: Reply | None = None
    esmtp: dict[str, str] = field(default_factory=dict)   # EHLO keyword (upper case) -> parameters
    tls: bool = False
    closed: bool = False

    # -- connection ------------------------------------------------------------------------------

    @classmethod
    async def connect(cls, host: str, port: int, *, timeout: float = DEFAULT_TIMEOUT,
                      source_address: str | None = None, read_greeting: bool = True) -> "Probe":
        """Open a TCP connection (bound to source_address if given) and read the 220 greeting.

        Raises ConnectRefused, ConnectTimeout, EarlyDisconnect, GarbageReply or ProbeTimeout. The
        greeting is stored in `greeting` whatever its code; callers decide what a 421/554 means.
        """
        local_addr = (source_address, 0) if source_address else None
        addresses = await resolve_host(host, port, timeout, source_address)
        reason = "no address"
        for address in addresses:  # in resolver order, like a mail client would
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(address, port, local_addr=local_addr,
                                            limit=MAX_LINE + 2),
                    timeout)
                break
            except asyncio.TimeoutError:
                raise ConnectTimeout(f"no TCP answer from {host}:{port} within {timeout:g}s") from None
            except OSError as exc:
                reason = exc.strerror or exc.__class__.__name__
        else:
            raise ConnectRefused(f"{host}:{port}: {reason}")
        probe = cls(host, port, reader, writer, timeout=timeout, source_address=source_address)
        src = f" from {source_address}" if source_address else ""
        probe.transcript.append((EVENT, f"connected to {host}:{port}{src}"))
        if read_greeting:
            try:
                probe.greeting = await probe.read_reply()
            except BaseException:
                probe.abort()
                raise
        return probe

    def abort(self) -> None:
        """Close the socket at once, without QUIT."""
        if not self.closed:
            self.closed = True
            self.transcript.append((EVENT, "connection closed"))
            try:
                self.writer.close()
            except Exception:  # the transport may already be gone
                pass

    async def close(self) -> None:
        """Close the socket without QUIT and wait (bounded) for it to go."""
        if self.closed:
            return
        self.abort()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), min(self.timeout, 2.0))
        except (Exception, asyncio.TimeoutError):
            pass

    async def quit(self) -> None:
        """Send QUIT, read the 221 if it comes, and close; never raises."""
        if self.closed:
            return
        try:
            await self.command("QUIT")
        except ProbeError:
            pass
        await self.close()

    async def __aenter__(self) -> "Probe":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.quit()

    # -- reading and writing ---------------------------------------------------------------------

    async def _read_line(self, timeout: float) -> str:
        try:
            data = await asyncio.wait_for(self.reader.readuntil(b"\n"), max(timeout, 0.001))
        except asyncio.TimeoutError:
            self.transcript.append((EVENT, f"no reply within {self.timeout:g}s"))
            raise ProbeTimeout(f"no reply from {self.host}:{self.port} within {self.timeout:g}s") from None
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                self.transcript.append((RECEIVED, exc.partial.decode("utf-8", "replace")))
            self.transcript.append((EVENT, "server closed the connection"))
            self.closed = True
            raise EarlyDisconnect(f"{self.host}:{self.port} closed the connection") from None
        except asyncio.LimitOverrunError:
            self.transcript.append((EVENT, f"reply line longer than {MAX_LINE} bytes"))
            self.abort()
            raise ReplyFlood(f"reply line longer than {MAX_LINE} bytes") from None
        except (ConnectionError, OSError) as exc:
            self.closed = True
            raise EarlyDisconnect(f"{self.host}:{self.port}: {exc.strerror or exc}") from None
        except ValueError:  # StreamReader raises ValueError when the limit is hit mid-separator
            self.abort()
            raise ReplyFlood(f"reply line longer than {MAX_LINE} bytes") from None
        line = data.decode("utf-8", "replace").rstrip("\r\n")
        self.transcript.append((RECEIVED, line))
        return line

    async def read_reply(self) -> Reply:
        """Read one complete (possibly multi-line) reply; the whole reply must arrive in `timeout`."""
        lines: list[str] = []
        deadline = asyncio.get_running_loop().time() + self.timeout
        while True:
            line = await self._read_line(deadline - asyncio.get_running_loop().time())
            match = _REPLY_LINE.match(line)
            if not match:
                self.abort()
                raise GarbageReply(f"not an SMTP reply line: {_shorten(line)!r}")
            lines.append(line)
            if match.group(2) != "-":
                break
            if len(lines) >= MAX_REPLY_LINES:
                self.abort()
                raise ReplyFlood(f"reply with more than {MAX_REPLY_LINES} lines")
        try:
            return parse_reply_lines(lines)
        except GarbageReply:
            self.abort()
            raise

    async def send_line(self, line: str) -> None:
        """Send one command line (CRLF appended) without waiting for the reply."""
        await self.send_raw((line + "\r\n").encode("utf-8", "surrogateescape"), record=False)
        self.transcript.append((SENT, line))

    async def send_raw(self, data: bytes, *, record: bool = True) -> None:
        """Send bytes exactly as given (smuggling and pipelining checks); recorded with escapes."""
        if self.closed:
            raise EarlyDisconnect(f"{self.host}:{self.port}: connection already closed")
        if record:
            self.transcript.append((SENT, _escape(data)))
        try:
            self.writer.write(data)
            await asyncio.wait_for(self.writer.drain(), self.timeout)
        except asyncio.TimeoutError:
            raise ProbeTimeout(f"{self.host}:{self.port} stopped reading within {self.timeout:g}s") from None
        except (ConnectionError, OSError) as exc:
            self.closed = True
            self.transcript.append((EVENT, "server closed the connection"))
            raise EarlyDisconnect(f"{self.host}:{self.port}: {exc.strerror or exc}") from None

    async def command(self, line: str) -> Reply:
        """Send one command and read its reply."""
        await self.send_line(line)
        return await self.read_reply()

    # -- SMTP verbs ------------------------------------------------------------------------------

    async def ehlo(self, name: str) -> Reply:
        """EHLO; on 250, parse the capabilities into `esmtp` (keyword upper-cased -> parameters)."""
        reply = await self.command(f"EHLO {name}")
        self.ehlo_reply = reply
        self.esmtp = {}
        if reply.code == 250:
            for text in reply.lines[1:]:
                keyword, _, params = text.strip().partition(" ")
                if keyword:
                    self.esmtp[keyword.upper()] = params.strip()
        return reply

    async def helo(self, name: str) -> Reply:
        return await self.command(f"HELO {name}")

    def supports(self, keyword: str) -> bool:
        """Whether the last EHLO reply advertised `keyword` (e.g. 'STARTTLS', 'PIPELINING')."""
        return keyword.upper() in self.esmtp

    async def start_data(self, sender: str, rcpt: str) -> bool:
        """MAIL FROM, RCPT TO, DATA: True when the server waits for the message (354), False as
        soon as one of them is refused. The caller sends the message and reads the final reply."""
        if (await self.command(f"MAIL FROM:<{sender}>")).code != 250:
            return False
        if (await self.command(f"RCPT TO:<{rcpt}>")).code not in (250, 251):
            return False
        return (await self.command("DATA")).code == 354

    async def rset(self) -> Reply:
        return await self.command("RSET")

    async def starttls(self, context: ssl.SSLContext, server_hostname: str | None = None) -> Reply:
        """Send STARTTLS and, on 220, upgrade the stream to TLS (TLSFailed if the handshake fails).

        Returns the STARTTLS reply; when it is not 220 the session stays in clear text. After the
        upgrade, the EHLO state is cleared (RFC 3207: the client must EHLO again).
        """
        reply = await self.command("STARTTLS")
        if reply.code != 220:
            return reply
        try:
            await asyncio.wait_for(
                self.writer.start_tls(context, server_hostname=server_hostname,
                                      ssl_handshake_timeout=self.timeout),
                self.timeout + 1)
        except asyncio.TimeoutError:
            self.abort()
            raise ProbeTimeout(f"TLS handshake with {self.host}:{self.port} timed out") from None
        except (ssl.SSLError, ssl.CertificateError, ConnectionError, OSError) as exc:
            self.transcript.append((EVENT, f"TLS handshake failed: {exc}"))
            self.abort()
            raise TLSFailed(str(exc)) from None
        self.tls = True
        self.esmtp = {}
        self.ehlo_reply = None
        obj = self.ssl_object
        version = obj.version() if obj else "?"
        cipher = obj.cipher()[0] if obj and obj.cipher() else "?"
        self.transcript.append((EVENT, f"TLS established: {version} {cipher}"))
        return reply

    @property
    def ssl_object(self) -> ssl.SSLObject | None:
        """The TLS session after starttls() (version(), cipher(), getpeercert(binary_form=True))."""
        return self.writer.get_extra_info("ssl_object")

    async def xclient(self, **attributes: str) -> Reply:
        """XCLIENT NAME=VALUE ...; on 220 the server greets again and the client must EHLO again."""
        args = " ".join(f"{k.upper()}={v}" for k, v in attributes.items())
        reply = await self.command(f"XCLIENT {args}")
        if reply.code == 220:
            self.esmtp = {}
            self.ehlo_reply = None
        return reply

    def transcript_text(self) -> str:
        """The transcript as text, one line per entry: 'C: ...', 'S: ...', '*: ...'."""
        return "\n".join(f"{d}: {line}" for d, line in self.transcript)


def _escape(data: bytes) -> str:
    """Bytes as one readable line: CR and LF shown as \\r and \\n."""
    text = data.decode("utf-8", "replace")
    return text.replace("\r", "\\r").replace("\n", "\\n")
