"""Audit targets from the command line and from --targets-file.

Accepted forms: `host`, `host:port`, `[v6addr]`, `[v6addr]:port`, and a bare IPv6 address (no port).
The port defaults to --port (25). A bad entry is an InputError naming where it came from. A target
that was named but could not be turned into a server to connect to (a --mx domain DNS says nothing
usable about) is an Unresolved entry: reported as incomplete, never probed.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from hardener.audit.context import AuditTarget
from hardener.errors import InputError

DEFAULT_PORT = 25

_HOSTNAME = re.compile(r"^(?=.{1,253}$)(?!-)[A-Za-z0-9_-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9_-]{1,63}(?<!-))*\.?$")


@dataclass(frozen=True)
class Unresolved:
    """A target that could not be resolved to a server: `label` names it in the report
    ("--mx example.org"), `reason` says why (e.g. "domain example.org does not exist ...")."""

    label: str
    reason: str


def parse_port(text: str, *, where: str = "target") -> int:
    """A TCP port 1-65535 from text; ValueError with a message otherwise."""
    if not text.isdigit():
        raise ValueError(f"port {text!r} is not a number")
    port = int(text)
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} out of range 1-65535")
    return port


def parse_target(text: str, default_port: int = DEFAULT_PORT) -> AuditTarget:
    """One target from 'host', 'host:port', '[v6]:port', '[v6]' or a bare IPv6 address.

    Raises ValueError with a short reason when the text is not a target.
    """
    spec = text.strip()
    if not spec:
        raise ValueError("empty target")
    if spec.startswith("["):
        close = spec.find("]")
        if close < 0:
            raise ValueError(f"{spec!r}: missing ']'")
        host, rest = spec[1:close], spec[close + 1:]
        try:
            ipaddress.IPv6Address(host.split("%")[0])
        except ValueError:
            raise ValueError(f"{spec!r}: {host!r} is not an IPv6 address") from None
        if rest and not rest.startswith(":"):
            raise ValueError(f"{spec!r}: unexpected text after ']'")
        port = parse_port(rest[1:]) if rest else default_port
        return AuditTarget(host, port)
    if spec.count(":") > 1:  # a bare IPv6 address
        try:
            ipaddress.IPv6Address(spec.split("%")[0])
        except ValueError:
            raise ValueError(f"{spec!r} is not an IPv6 address (write [v6addr]:port)") from None
        return AuditTarget(spec, default_port)
    host, sep, port_text = spec.partition(":")
    if sep and not port_text:
        raise ValueError(f"{spec!r}: empty port")
    port = parse_port(port_text) if sep else default_port
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        if not _HOSTNAME.match(host) or host.replace(".", "").isdigit():
            raise ValueError(f"{host!r} is not a host name or IP address") from None
    return AuditTarget(host, port)


def targets_from_args(args: list[str], default_port: int = DEFAULT_PORT) -> list[AuditTarget]:
    """Targets from command-line arguments (InputError naming the bad argument)."""
    out = []
    for arg in args:
        try:
            out.append(parse_target(arg, default_port))
        except ValueError as err:
            raise InputError(str(err), field="TARGET") from None
    return out


def targets_from_file(path: Path, default_port: int = DEFAULT_PORT) -> list[AuditTarget]:
    """Targets from a file: one per line, '#' starts a comment, blank lines ignored.

    InputError 'FILE:LINE: reason' for a bad line, or 'FILE: reason' if the file cannot be read.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise InputError(f"cannot read targets file: {reason}", file=str(path),
                         field="--targets-file") from None
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        try:
            out.append(parse_target(entry, default_port))
        except ValueError as err:
            raise InputError(str(err), file=str(path), line=number) from None
    return out


def unique(targets: list[AuditTarget | Unresolved]) -> list[AuditTarget | Unresolved]:
    """Targets in order with duplicates (same host and port, or same label) dropped."""
    seen: set[tuple[str, int]] = set()
    out = []
    for target in targets:
        if isinstance(target, Unresolved):
            key = (target.label, 0)
        else:
            key = (target.host.lower(), target.port)
        if key not in seen:
            seen.add(key)
            out.append(target)
    return out
