"""`hardener audit`: command-line layer (parses arguments, calls the library).

    hardener audit TARGET... [--targets-file FILE] [--mx DOMAIN [--resolver ADDR[:PORT]]] [--port N]
                   [--source-address IP]... [--trusted CIDR]... [--xclient-addr IP]...
                   [--relay-domain DOMAIN] [--intrusive [--rcpt ADDR] [--relay-canary ADDR]]
                   [--format F] [--output FILE] [--fail-on SEV] [--timeout S] [--concurrency N]
                   [--baseline FILE] [--transcript DIR] [--ca-file FILE]
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import ssl
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from hardener.audit.baseline import apply_baseline, load_baseline
from hardener.audit.context import DEFAULT_RELAY_DOMAIN, AuditOptions, AuditTarget
from hardener.audit.probe import DEFAULT_TIMEOUT
from hardener.audit.runner import run_audit, show_progress
from hardener.audit.targets import DEFAULT_PORT, targets_from_args, targets_from_file, unique
from hardener.cli.common import FailOnOption, FormatOption, OutputOption, parse_trusted
from hardener.errors import InputError
from hardener.report.output import emit_report

_ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")


def parse_ip(text: str, option: str) -> str:
    """An IP address (InputError naming the option otherwise)."""
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise InputError(f"{text!r} is not an IP address", field=option) from None


def check_bindable(address: str) -> None:
    """InputError unless this machine can use `address` as a source address."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind((address, 0))
    except OSError as err:
        raise InputError(f"cannot use {address} as a source address: {err.strerror or err}",
                         field="--source-address") from None


def parse_ca_file(value: object) -> Path | None:
    """--ca-file: a readable file of PEM certificates OpenSSL accepts, checked when the flag is read
    (before any connection); InputError naming the flag and the file otherwise."""
    if value is None or str(value) == "":
        return None
    path = Path(str(value))

    def bad(reason: str) -> InputError:
        return InputError(reason, file=str(path), field="--ca-file")

    try:
        data = path.read_bytes()
    except OSError as err:
        raise bad(f"cannot read: {err.strerror or err}") from None
    if not data.strip():
        raise bad("is empty, expected PEM CA certificates")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise bad("is not PEM (binary data; convert a DER certificate with "
                  "'openssl x509 -inform der -in FILE -out FILE.pem')") from None
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=text)
    except (ssl.SSLError, ValueError):
        raise bad("holds no PEM certificate OpenSSL can read "
                  "(expected -----BEGIN CERTIFICATE----- blocks)") from None
    return path


def parse_mailbox(text: str, option: str) -> str:
    """user@domain (InputError otherwise)."""
    value = text.strip().strip("<>")
    if not _ADDRESS.match(value):
        raise InputError(f"{text!r} is not an address user@domain", field=option)
    return value


def build_options(*, source_addresses: list[str], trusted: list[str], xclient_addrs: list[str],
                  relay_domain: str, intrusive: bool, rcpt: str | None, relay_canary: str | None,
                  timeout: float, concurrency: int, transcript: Path | None,
                  ca_file: Path | None = None) -> AuditOptions:
    """Validate the flags and build AuditOptions (InputError naming the flag on a bad value)."""
    if timeout <= 0:
        raise InputError(f"{timeout:g} must be more than 0 seconds", field="--timeout")
    if concurrency < 1:
        raise InputError(f"{concurrency} must be at least 1", field="--concurrency")
    sources = tuple(dict.fromkeys(parse_ip(a, "--source-address") for a in source_addresses))
    for address in sources:
        check_bindable(address)
    if relay_canary and not intrusive:
        raise InputError("--relay-canary sends a real message: it needs --intrusive",
                         field="--relay-canary")
    domain = relay_domain.strip().lower()
    if not re.match(r"^[a-z0-9-]+(\.[a-z0-9-]+)+$", domain):
        raise InputError(f"{relay_domain!r} is not a domain name", field="--relay-domain")
    if transcript is not None and transcript.exists() and not transcript.is_dir():
        raise InputError("exists and is not a directory", file=str(transcript), field="--transcript")
    return AuditOptions(
        source_addresses=sources,
        trusted=parse_trusted(trusted),
        relay_domain=domain,
        intrusive=intrusive,
        rcpt=parse_mailbox(rcpt, "--rcpt") if rcpt else None,
        relay_canary=parse_mailbox(relay_canary, "--relay-canary") if relay_canary else None,
        xclient_addrs=tuple(parse_ip(a, "--xclient-addr") for a in xclient_addrs),
        timeout=timeout,
        concurrency=concurrency,
        transcript_dir=transcript,
        ca_file=ca_file,
    )


def collect_targets(args: list[str], targets_file: Path | None, mx: list[str], resolver: str | None,
                    port: int, timeout: float) -> tuple[list[AuditTarget], list[str]]:
    """Targets from arguments, the targets file and --mx domains (in that order), deduplicated."""
    targets = targets_from_args(args, port)
    if targets_file is not None:
        targets += targets_from_file(targets_file, port)
    notes: list[str] = []
    if resolver and not mx:
        raise InputError("--resolver is only used with --mx DOMAIN", field="--resolver")
    if mx:
        from hardener.audit import mx as mx_module

        for domain in mx:
            resolved = asyncio.run(mx_module.resolve_mx_detailed(domain, resolver, timeout, port=port))
            targets += resolved.targets
            notes += resolved.notes
    if not targets:
        raise InputError("no target given (TARGET, --targets-file or --mx DOMAIN)", field="TARGET")
    return unique(targets), notes


AUDIT_EPILOG = (
    "Relay tests stop at RCPT and reset: no mail is sent unless --intrusive. Exit status: 0 nothing "
    "at or above --fail-on; 1 findings at or above it; 2 bad input (nothing is probed); 3 a server "
    "could not be checked completely (the report says what was checked).")


def register(app: typer.Typer) -> None:
    """Add the audit command to the main app."""

    @app.command("audit", epilog=AUDIT_EPILOG)
    def audit(
        targets: Annotated[Optional[list[str]], typer.Argument(
            metavar="TARGET",
            help="SMTP server to audit: host, host:port or \\[v6addr]:port (port from --port).",
            show_default=False)] = None,
        targets_file: Annotated[Optional[Path], typer.Option(
            "--targets-file", metavar="FILE",
            help="Read more targets from FILE, one per line; '#' starts a comment.")] = None,
        mx: Annotated[Optional[list[str]], typer.Option(
            "--mx", metavar="DOMAIN",
            help="Audit the servers that receive mail for DOMAIN: every address of every MX host, "
                 "in preference order (repeatable).")] = None,
        resolver: Annotated[Optional[str], typer.Option(
            "--resolver", metavar="ADDR[:PORT]",
            help="DNS server to ask for --mx (default: the system's resolvers).")] = None,
        port: Annotated[int, typer.Option(
            "--port", metavar="N", min=1, max=65535,
            help="SMTP port for targets given without one (587 for submission).")] = DEFAULT_PORT,
        source_address: Annotated[Optional[list[str]], typer.Option(
            "--source-address", metavar="IP",
            help="Connect from this local IP address; repeat to test relaying from several "
                 "vantage points (the first one is used by every check).")] = None,
        trusted: Annotated[Optional[list[str]], typer.Option(
            "--trusted", metavar="CIDR",
            help="A network allowed to relay through the server, as in its mynetworks "
                 "(repeatable): a --source-address inside it that can relay is not a finding.")
        ] = None,
        xclient_addr: Annotated[Optional[list[str]], typer.Option(
            "--xclient-addr", metavar="IP",
            help="If the server grants XCLIENT to this machine, also run the relay tests as if "
                 "connecting from IP (repeatable).")] = None,
        relay_domain: Annotated[str, typer.Option(
            "--relay-domain", metavar="DOMAIN",
            help="A domain the server must not relay to; relay tests name recipients there and "
                 "stop at RCPT (no mail is sent).")] = DEFAULT_RELAY_DOMAIN,
        intrusive: Annotated[bool, typer.Option(
            "--intrusive",
            help="Allow tests that send real mail: SMTP smuggling (to --rcpt) and the relay "
                 "canary (to --relay-canary).")] = False,
        rcpt: Annotated[Optional[str], typer.Option(
            "--rcpt", metavar="ADDR",
            help="A mailbox you read, the only recipient of the --intrusive smuggling test "
                 "(which needs it).")] = None,
        relay_canary: Annotated[Optional[str], typer.Option(
            "--relay-canary", metavar="ADDR",
            help="With --intrusive: confirm an open relay by relaying one message to ADDR, an "
                 "outside mailbox you read.")] = None,
        fmt: FormatOption = "table",
        output: OutputOption = None,
        fail_on: FailOnOption = "high",  # type: ignore[assignment]  (parsed to Severity.HIGH)
        timeout: Annotated[float, typer.Option(
            "--timeout", metavar="S",
            help="Seconds to wait for a connection, each reply, each TLS handshake and the DNS "
                 "answers of --mx.")] = DEFAULT_TIMEOUT,
        concurrency: Annotated[int, typer.Option(
            "--concurrency", metavar="N",
            help="Servers audited at the same time (each gets one connection at a time).")] = 10,
        baseline: Annotated[Optional[Path], typer.Option(
            "--baseline", metavar="FILE",
            help="YAML list of accepted findings (control, target, reason, expires) to leave out "
                 "of the result and of --fail-on.")] = None,
        transcript: Annotated[Optional[Path], typer.Option(
            "--transcript", metavar="DIR",
            help="Save every SMTP line sent and received, one file per server, in DIR.")] = None,
        ca_file: Annotated[Optional[Path], typer.Option(
            "--ca-file", metavar="FILE", parser=parse_ca_file,
            help="Also trust the CA certificates in this PEM file (e.g. your internal CA) when "
                 "verifying server certificates.")] = None,
    ) -> None:
        """Check SMTP servers over the network against the control catalog: open relay,
        trusted networks, banner, VRFY/EXPN, user enumeration, STARTTLS, TLS protocols and
        certificates, AUTH before TLS, SMTP smuggling (--intrusive)."""
        options = build_options(
            source_addresses=source_address or [], trusted=trusted or [],
            xclient_addrs=xclient_addr or [], relay_domain=relay_domain, intrusive=intrusive,
            rcpt=rcpt, relay_canary=relay_canary, timeout=timeout, concurrency=concurrency,
            transcript=transcript, ca_file=ca_file)
        suppressions = load_baseline(baseline) if baseline is not None else []
        target_list, notes = collect_targets(targets or [], targets_file, mx or [], resolver, port,
                                             timeout)
        report = run_audit(target_list, options, progress_bar=show_progress(fmt))
        report.notes.extend(notes)
        if baseline is not None:
            apply_baseline(report, suppressions, source=str(baseline))
        if output is not None or fmt not in ("table", "markdown"):
            # the human formats on stdout show the notes themselves; otherwise say them here too
            for note in report.notes:
                print(f"hardener: note: {note}", file=sys.stderr)
        raise typer.Exit(emit_report(report, fmt, output, fail_on))
