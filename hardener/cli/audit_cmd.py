"""`hardener audit`: command-line layer (parses arguments, calls the library).

    hardener audit TARGET... [--targets-file FILE] [--mx DOMAIN [--resolver ADDR[:PORT]]] [--port N]
                   [--source-address IP]... [--trusted CIDR]... [--xclient-addr IP]...
                   [--relay-domain DOMAIN] [--intrusive [--rcpt ADDR] [--relay-canary ADDR]]
                   [--format F] [--output FILE] [--fail-on SEV] [--timeout S] [--concurrency N]
                   [--baseline FILE] [--transcript DIR] [--ca-file FILE]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from hardener.audit.baseline import apply_baseline, load_baseline
from hardener.audit.context import DEFAULT_RELAY_DOMAIN
from hardener.audit.options import build_options, check_ca_file, collect_targets
from hardener.audit.probe import DEFAULT_TIMEOUT
from hardener.audit.runner import run_audit, show_progress
from hardener.audit.targets import DEFAULT_PORT
from hardener.cli.common import FailOnOption, FormatOption, OutputOption, command_app
from hardener.report.output import emit_report

app = command_app()


AUDIT_EPILOG = (
    "Relay tests stop at RCPT and reset: no mail is sent unless --intrusive. Exit status: 0 nothing "
    "at or above --fail-on; 1 findings at or above it; 2 bad input (nothing is probed); 3 a server "
    "could not be checked completely (the report says what was checked).")


@app.command("audit", epilog=AUDIT_EPILOG)
def audit(
    targets: Annotated[Optional[list[str]], typer.Argument(
        metavar="TARGET",
        help="SMTP server to audit: host, host:port or [v6addr]:port (port from --port).",
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
        "--ca-file", metavar="FILE", parser=check_ca_file,
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
    plan = collect_targets(targets or [], targets_file, mx or [], resolver, port, timeout)
    report = run_audit(plan.entries, options, progress_bar=show_progress(fmt))
    report.notes[:0] = plan.notes
    if baseline is not None:
        apply_baseline(report, suppressions, source=str(baseline))
    if output is not None or fmt not in ("table", "markdown"):
        # the human formats on stdout show the notes themselves; otherwise say them here too
        for note in report.notes:
            print(f"hardener: note: {note}", file=sys.stderr)
    raise typer.Exit(emit_report(report, fmt, output, fail_on))
