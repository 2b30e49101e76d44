"""What `hardener audit` is asked to do, checked before anything is probed: the options and the
list of targets (arguments, --targets-file, --mx domains).

Every bad value is an InputError naming the flag (exit 2, nothing probed). A --mx domain whose DNS
lookup fails is not bad input: it becomes an Unresolved entry of the plan, reported as an
incomplete target (exit 3) while every other target is audited. The CLI builds its audits
through build_options() and plan_targets() (collect_targets()); the planned `scan` and `provision`
are to use them too.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from hardener.audit.context import AuditOptions, AuditTarget
from hardener.audit.targets import Unresolved, targets_from_args, targets_from_file, unique
from hardener.errors import InputError
from hardener.trusted import parse_trusted

_ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")
_DOMAIN = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)+$")


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


def check_ca_file(value: object) -> Path | None:
    """--ca-file: a readable file of PEM certificates OpenSSL accepts (None when not given);
    InputError naming the flag and the file otherwise."""
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
    if not _DOMAIN.match(domain):
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
        ca_file=check_ca_file(ca_file),
    )


@dataclass
class TargetPlan:
    """The targets of one audit in the order given; Unresolved entries are reported, not probed."""

    entries: list[AuditTarget | Unresolved] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


async def plan_targets(args: list[str], targets_file: Path | None, mx_domains: list[str],
                       resolver: str | None, port: int, timeout: float) -> TargetPlan:
    """Targets from arguments, the targets file and --mx domains (in that order), deduplicated.

    Everything that can be checked without the network is checked first (InputError, exit 2);
    then each --mx domain is resolved, and one that fails becomes an Unresolved entry.
    """
    targets = targets_from_args(args, port)
    if targets_file is not None:
        targets += targets_from_file(targets_file, port)
    if resolver and not mx_domains:
        raise InputError("--resolver is only used with --mx DOMAIN", field="--resolver")
    if not targets and not mx_domains:
        raise InputError("no target given (TARGET, --targets-file or --mx DOMAIN)", field="TARGET")
    plan = TargetPlan(entries=list(targets))
    if mx_domains:
        # imported here: dnspython takes ~90 ms to import, and only --mx needs it
        from hardener.audit import mx

        for domain in mx_domains:
            mx.check_domain(domain)
        dns = mx.make_resolver(resolver, timeout)
        for domain in dict.fromkeys(mx_domains):
            resolved = await mx.resolve_domain(domain, resolver, timeout, port=port,
                                               dns_resolver=dns)
            plan.notes += resolved.notes
            if resolved.error is not None:
                plan.entries.append(Unresolved(f"--mx {resolved.domain}", resolved.error))
            else:
                plan.entries += resolved.targets
    plan.entries = unique(plan.entries)
    return plan


def collect_targets(args: list[str], targets_file: Path | None, mx_domains: list[str],
                    resolver: str | None, port: int, timeout: float) -> TargetPlan:
    """plan_targets() for callers without an event loop (the command line)."""
    return asyncio.run(plan_targets(args, targets_file, mx_domains, resolver, port, timeout))
