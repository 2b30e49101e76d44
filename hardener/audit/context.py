"""What every audit check gets: the target, the options, and a way to open probe sessions.

A check is `async def run(ctx: AuditContext) -> None`. It opens sessions with `ctx.session()` (an
async context manager that connects, reads the greeting, says EHLO, and QUITs at the end), adds
findings with `ctx.add(Finding.of(...))` and records how each of its slugs ended with
`ctx.passed/failed/skipped/error`. Sessions to one target are opened one at a time (politeness); a
421 greeting is retried after a delay. The context keeps every session's transcript for evidence and
for `--transcript DIR`.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from hardener.audit.probe import DEFAULT_TIMEOUT, Probe, ProbeError, Reply
from hardener.report.model import CheckStatus, Finding, TargetResult

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_HELO = "audit.hardener.invalid"
DEFAULT_RELAY_DOMAIN = "example.net"


def _looks_like_domain(word: str) -> bool:
    labels = word.rstrip(".").split(".")
    return all(label and all(c.isalnum() or c == "-" for c in label)
                                    for label in labels) and not word.replace(".", "").isdigit()


@dataclass(frozen=True)
class AuditTarget:
    """One SMTP server to audit: where to connect and how to name it in reports."""

    host: str                 # IP address or host name to connect to
    port: int = 25
    name: str | None = None   # e.g. the MX host name when the target came from --mx

    @property
    def display(self) -> str:
        """'127.0.0.2:2525', '[::1]:25', 'mx.example.com:25', or for a target found by name (--mx)
        the name with the address connected to: 'mx1.example.com[192.0.2.5]:25'."""
        if self.name and self.name.rstrip(".").lower() != self.host.rstrip(".").lower():
            return f"{self.name.rstrip('.')}[{self.host}]:{self.port}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def is_ip(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True

    def __str__(self) -> str:
        return self.display


@dataclass
class AuditOptions:
    """Everything the command line can set for an audit (DESIGN.md `hardener audit`)."""

    source_addresses: tuple[str, ...] = ()          # vantage points (--source-address)
    trusted: tuple[IPNetwork, ...] = ()             # declared trusted networks (--trusted)
    relay_domain: str = DEFAULT_RELAY_DOMAIN        # foreign domain used by the relay battery
    intrusive: bool = False                         # allow DATA (smuggling, relay canary)
    rcpt: str | None = None                         # --rcpt: the only address smuggling sends to
    relay_canary: str | None = None                 # --relay-canary: confirm a relay by mailing this
    xclient_addrs: tuple[str, ...] = ()             # --xclient-addr: vantages tested via XCLIENT
    timeout: float = DEFAULT_TIMEOUT                # connect and per-reply timeout (seconds)
    concurrency: int = 10                           # targets audited at once
    transcript_dir: Path | None = None              # --transcript DIR
    ca_file: Path | None = None                     # --ca-file: extra trust anchors for TLS checks
    helo_name: str = DEFAULT_HELO
    retries_421: int = 2                            # extra attempts when the greeting is 421
    delay_421: float = 2.0                          # seconds to wait before such an attempt
    target_deadline: float | None = None            # overall seconds per target (None: derived)
    checks: tuple[str, ...] | None = None           # restrict to these check modules (None: all)

    def is_trusted(self, address: str | None) -> bool:
        """Whether a source address lies inside a declared --trusted network."""
        if address is None or not self.trusted:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip.version == net.version and ip in net for net in self.trusted)


class GreetingRefused(ProbeError):
    """The server answered the connection with something other than 220 (e.g. 554, or 421 after
    every retry)."""

    kind = "greeting refused"

    def __init__(self, reply: Reply, message: str = "") -> None:
        super().__init__(message or f"greeting {reply}")
        self.reply = reply


class EhloRefused(ProbeError):
    """EHLO was refused (and HELO as a fallback too)."""

    kind = "ehlo refused"

    def __init__(self, reply: Reply) -> None:
        super().__init__(f"EHLO answered {reply}")
        self.reply = reply


@dataclass
class AuditContext:
    """The state of one target's audit, shared by its checks."""

    target: AuditTarget
    options: AuditOptions
    result: TargetResult
    greeting: Reply | None = None           # the first 220 greeting seen (from the default vantage)
    ehlo_reply: Reply | None = None         # the first EHLO reply seen (from the default vantage)
    esmtp: dict[str, str] = field(default_factory=dict)
    transcripts: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)
    peer_address: str | None = None        # the server's IP address as connected
    cache: dict[str, object] = field(default_factory=dict)  # results shared between checks
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one connection at a time per target
    _sessions: int = 0

    @classmethod
    def for_target(cls, target: AuditTarget, options: AuditOptions) -> "AuditContext":
        return cls(target, options, TargetResult(target=target.display, vantage="network"))

    # -- sessions --------------------------------------------------------------------------------

    async def new_probe(self, source_address: str | None = None, *, ehlo: bool = True,
                        helo_name: str | None = None) -> Probe:
        """A connected probe: greeted with 220 and, unless ehlo=False, after a successful EHLO.

        The caller must `await probe.quit()`; prefer `async with ctx.session(...)`. Raises a
        ProbeError subclass (GreetingRefused for a non-220 greeting, EhloRefused) on failure.
        """
        source = source_address if source_address is not None else self.default_source
        attempts = 1 + max(0, self.options.retries_421)
        probe: Probe | None = None
        for attempt in range(attempts):
            # after the first connection, the address it reached (a name is resolved once)
            probe = await Probe.connect(self.peer_address or self.target.host, self.target.port,
                                        timeout=self.options.timeout, source_address=source)
            self._keep_transcript(probe)
            assert probe.greeting is not None
            if probe.greeting.code == 220:
                break
            await probe.quit()
            if probe.greeting.code == 421 and attempt + 1 < attempts:
                await asyncio.sleep(self.options.delay_421 * (attempt + 1))
                continue
            raise GreetingRefused(probe.greeting)
        assert probe is not None and probe.greeting is not None
        if self.peer_address is None:
            peer = probe.writer.get_extra_info("peername")
            self.peer_address = peer[0] if peer else None
        if self.greeting is None and source == self.default_source:
            self.greeting = probe.greeting
            self.result.banner = probe.greeting.first_line
        if ehlo:
            try:
                await self.say_ehlo(probe, helo_name)
            except BaseException:
                await probe.quit()
                raise
        return probe

    async def say_ehlo(self, probe: Probe, helo_name: str | None = None) -> Reply:
        """EHLO (falling back to HELO on a 5xx); caches the first capabilities seen."""
        name = helo_name or self.options.helo_name
        reply = await probe.ehlo(name)
        if reply.code != 250:
            if reply.permanent:
                helo = await probe.helo(name)
                if helo.code == 250:  # an SMTP-only server: no extensions at all
                    if self.ehlo_reply is None and probe.source_address == self.default_source:
                        self.ehlo_reply, self.esmtp = reply, {}
                    return helo
            raise EhloRefused(reply)
        if self.ehlo_reply is None and probe.source_address == self.default_source:
            self.ehlo_reply = reply
            self.esmtp = dict(probe.esmtp)
        return reply

    @asynccontextmanager
    async def session(self, source_address: str | None = None, *, ehlo: bool = True,
                      helo_name: str | None = None) -> AsyncIterator[Probe]:
        """`async with ctx.session() as probe:` — one connection at a time to this target, QUIT
        at the end whatever happens."""
        async with self.lock:
            probe = await self.new_probe(source_address, ehlo=ehlo, helo_name=helo_name)
            try:
                yield probe
            finally:
                await probe.quit()

    async def capabilities(self) -> dict[str, str]:
        """The EHLO capabilities from the default vantage (one session the first time)."""
        if self.ehlo_reply is None:
            async with self.session():
                pass
        return self.esmtp

    @property
    def server_name(self) -> str:
        """The name the server gives itself (first word of the 220 greeting), else the target host."""
        if self.greeting and self.greeting.lines:
            words = self.greeting.lines[0].split()
            if words and _looks_like_domain(words[0]):
                return words[0].rstrip(".").lower()
        return self.ip_literal if self.target.is_ip else self.target.host

    @property
    def ip_literal(self) -> str:
        """The server's address as an SMTP address literal: [192.0.2.1] or [IPv6:2001:db8::1]."""
        addr = self.peer_address or self.target.host
        return f"[IPv6:{addr}]" if ":" in addr else f"[{addr}]"

    @property
    def default_source(self) -> str | None:
        """The vantage used when a check does not ask for one: the first --source-address."""
        return self.options.source_addresses[0] if self.options.source_addresses else None

    def _keep_transcript(self, probe: Probe) -> None:
        self._sessions += 1
        label = f"session {self._sessions}"
        if probe.source_address:
            label += f" from {probe.source_address}"
        self.transcripts.append((label, probe.transcript))

    def transcript_text(self) -> str:
        """All sessions' transcripts, for `--transcript DIR`."""
        parts = []
        for label, lines in self.transcripts:
            parts.append(f"# {self.target.display} {label}")
            parts.extend(f"{d}: {line}" for d, line in lines)
        return "\n".join(parts) + "\n"

    # -- results ---------------------------------------------------------------------------------

    def add(self, finding: Finding) -> None:
        self.result.add(finding)

    def passed(self, slug: str, detail: str = "") -> None:
        self.result.record(slug, CheckStatus.PASSED, detail)

    def failed(self, slug: str, detail: str = "") -> None:
        self.result.record(slug, CheckStatus.FAILED, detail)

    def skipped(self, slug: str, detail: str = "") -> None:
        self.result.record(slug, CheckStatus.SKIPPED, detail)

    def error(self, slug: str, detail: str = "") -> None:
        self.result.record(slug, CheckStatus.ERROR, detail)

    def conclude(self, slug: str, detail: str = "") -> None:
        """Record `slug` as failed if a finding for it was added, else passed."""
        if any(f.check == slug for f in self.result.findings):
            self.failed(slug, detail)
        else:
            self.passed(slug, detail)
