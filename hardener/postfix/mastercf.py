"""Read a Postfix master.cf as Postfix 3.7 does (master_ent.c, postconf -M/-F/-P).

Lines: the same logical-line rules as main.cf (comments, continuation by leading whitespace). Each
entry has eight fields, `service type private unpriv chroot wakeup maxproc command`, then arguments.
`-` means the Postfix 3.x default: private y, unpriv y, chroot n, wakeup 0 (never),
maxproc $default_process_limit. Arguments may be grouped with `{ ... }` (braces and the whitespace
just inside them are removed, as master does); `-o name=value` and `-o { name = value }` set a
parameter for that service only. Errors name the file and line.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field
from pathlib import Path

from hardener.errors import ConfigError
from hardener.postfix.defaults import protocol_families
from hardener.postfix.interfaces import own_interfaces
from hardener.postfix.maincf import (WHITESPACE, MainCf, read_config_file, read_logical_lines,
                                      split_name_value)
from hardener.report.model import Location

WILDCARDS = {socket.AF_INET: "0.0.0.0", socket.AF_INET6: "::"}
TYPES = ("inet", "unix", "unix-dgram", "fifo", "pass")
BOOL_DEFAULTS = {"private": True, "unpriv": True, "chroot": False}
# Postfix 3.6+ known_tcp_ports default, used before the services database.
KNOWN_TCP_PORTS = {"lmtp": 24, "smtp": 25, "smtps": 465, "submissions": 465, "submission": 587}


@dataclass
class Service:
    """One master.cf entry, with the '-' defaults resolved (the written columns kept too)."""

    name: str
    type: str
    private: bool
    unpriv: bool
    chroot: bool
    wakeup: int                     # seconds; 0 = no wakeup
    maxproc: int                    # resolved: '-' is default_process_limit
    command: str
    args: list[str] = field(default_factory=list)      # after the command, braces removed
    options: dict[str, str] = field(default_factory=dict)  # -o name=value, last one wins
    line: int = 0
    file: str = "master.cf"
    wakeup_conditional: bool = False   # "60?": wake up only after the service was used
    columns: tuple[str, ...] = ()      # the 7 fields after the name, as written
    listen_host: str | None = None     # inet only: "127.0.0.1", "::1", or None for all interfaces
    listen_port: int | None = None     # inet only; None when the service name is unknown
    listen_port_text: str | None = None

    @property
    def location(self) -> Location:
        return Location(self.file, self.line)

    @property
    def argv(self) -> list[str]:
        """The command and its arguments as the daemon receives them."""
        return [self.command, *self.args]

    def listen_addresses(self, cf: MainCf) -> list[str]:
        """Where this inet service listens: its own host, else inet_interfaces ("all": the
        wildcard address of each enabled protocol). Empty for non-inet services."""
        if self.type != "inet":
            return []
        if self.listen_host is not None:
            return [self.listen_host]
        words = cf.get_list("inet_interfaces")
        try:
            families = protocol_families(cf.get("inet_protocols"))
            if [w.lower() for w in words] in ([], ["all"]):
                return [WILDCARDS[f] for f in families]
            return [str(i.ip) for i in own_interfaces(words, families)]
        except ValueError as exc:
            where = cf.location("inet_interfaces")
            raise ConfigError(str(exc), file=where.file if where else cf.filename,
                              line=where.line if where else None, field="inet_interfaces") from None

    def option(self, name: str, cf: MainCf | None = None) -> str | None:
        """The -o value for `name` (expanded against `cf` when given), None when not overridden."""
        value = self.options.get(name)
        if value is None or cf is None:
            return value
        return cf.with_overrides(self.options).get(name)


@dataclass
class MasterCf:
    """A parsed master.cf."""

    services: list[Service]
    path: Path | None = None

    def find(self, name: str, type: str | None = None) -> Service | None:
        """The first service with this name (and type, when given), or None."""
        for service in self.services:
            if service.name == name and (type is None or service.type == type):
                return service
        return None

    def find_all(self, *, type: str | None = None, command: str | None = None) -> list[Service]:
        """Every service of a type and/or running a command (e.g. command='smtpd')."""
        return [s for s in self.services
                if (type is None or s.type == type) and (command is None or s.command == command)]


def split_args(text: str, filename: str, line: int) -> list[str]:
    """Split on whitespace, keeping `{ ... }` groups whole and stripping their braces (extpar)."""
    args: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] in WHITESPACE:
            i += 1
            continue
        start = i
        if text[i] == "{":
            level = 0
            while i < n:
                if text[i] == "{":
                    level += 1
                elif text[i] == "}":
                    level -= 1
                    if level == 0:
                        break
                i += 1
            if level != 0:
                raise ConfigError(f'missing \'}}\' in "{text[start:]}"', file=filename, line=line)
            i += 1
            if i < n and text[i] not in WHITESPACE:
                raise ConfigError(f'syntax error after \'}}\' in "{text[start:i + 1]}..."',
                                  file=filename, line=line)
            args.append(text[start + 1:i - 1].strip(WHITESPACE))
        else:
            while i < n and text[i] not in WHITESPACE:
                i += 1
            args.append(text[start:i])
    return args


def parse_listen(name: str, filename: str, line: int) -> tuple[str | None, str]:
    """Split an inet service name into host (None: all interfaces) and port text (host_port())."""
    match = re.fullmatch(r"\[([^\]]*)\]:([^:]+)", name)
    if match:
        return match.group(1), match.group(2)
    if name.startswith("["):
        raise ConfigError(f'bad service name syntax "{name}" (IPv6 needs [addr]:port)',
                          file=filename, line=line)
    host, sep, port = name.rpartition(":")
    if not sep:
        return None, name
    if ":" in host:
        raise ConfigError(f'bad service name syntax "{name}" (write an IPv6 address as [addr]:port)',
                          file=filename, line=line)
    if not port:
        raise ConfigError(f'missing port in service name "{name}"', file=filename, line=line)
    return (host or None), port


def resolve_port(port: str) -> int | None:
    """A port number or service name (smtp 25, submission 587, ...) as a number; None if unknown."""
    if port.isdigit():
        return int(port)
    if port in KNOWN_TCP_PORTS:
        return KNOWN_TCP_PORTS[port]
    try:
        return socket.getservbyname(port, "tcp")
    except OSError:
        return None


def _bool_field(value: str, what: str, default: bool, entry: str, filename: str, line: int) -> bool:
    if value == "-":
        return default
    if value in ("y", "n"):
        return value == "y"
    raise ConfigError(f'invalid {what} field "{value}" in "{entry}" (use y, n or -)',
                      file=filename, line=line)


def parse_master_cf(text: str, filename: str = "master.cf", *,
                    main_cf: MainCf | None = None, strict: bool = True) -> MasterCf:
    """Parse master.cf text; `main_cf` supplies default_process_limit for '-' (else 100)."""
    default_limit = main_cf.get_int("default_process_limit") if main_cf else 100
    services = []
    for number, entry in read_logical_lines(text, filename, strict=strict):
        fields = entry.split(None, 8)
        if len(fields) < 8:
            raise ConfigError(f'bad field count in "{entry.strip()}" (need service type private '
                              "unpriv chroot wakeup maxproc command)", file=filename, line=number)
        name, type_, private, unpriv, chroot, wakeup, maxproc, command = fields[:8]
        if type_ not in TYPES:
            raise ConfigError(f'invalid type field "{type_}" in "{entry.strip()}" '
                              f"(one of {', '.join(TYPES)})", file=filename, line=number)
        is_private = _bool_field(private, "private", True, entry.strip(), filename, number)
        if type_ == "inet" and is_private:
            raise ConfigError(f'inet service cannot be private: "{name}" (set the private column '
                              "to n)", file=filename, line=number)
        match = re.fullmatch(r"([0-9]+)(\??)", wakeup)
        if wakeup != "-" and not match:
            raise ConfigError(f'invalid wakeup field "{wakeup}" in "{entry.strip()}"',
                              file=filename, line=number)
        if maxproc != "-" and not maxproc.isdigit():
            raise ConfigError(f'invalid process_limit field "{maxproc}" in "{entry.strip()}"',
                              file=filename, line=number)
        args = split_args(fields[8] if len(fields) > 8 else "", filename, number)
        service = Service(
            name=name, type=type_, private=is_private,
            unpriv=_bool_field(unpriv, "unprivileged", True, entry.strip(), filename, number),
            chroot=_bool_field(chroot, "chroot", False, entry.strip(), filename, number),
            wakeup=int(match.group(1)) if match else 0,
            wakeup_conditional=bool(match and match.group(2)),
            maxproc=default_limit if maxproc == "-" else int(maxproc),
            command=command, args=args, options=_options(args, filename, number),
            line=number, file=filename,
            columns=(type_, private, unpriv, chroot, wakeup, maxproc, command),
        )
        if type_ == "inet":
            host, port = parse_listen(name, filename, number)
            service.listen_host, service.listen_port_text = host, port
            service.listen_port = resolve_port(port)
        services.append(service)
    return MasterCf(services)


def _options(args: list[str], filename: str, line: int) -> dict[str, str]:
    options: dict[str, str] = {}
    i = 0
    while i < len(args):
        if args[i] == "-o":
            if i + 1 >= len(args):
                raise ConfigError("-o without name=value", file=filename, line=line)
            name, value = split_name_value(args[i + 1], filename, line)
            options[name] = value
            i += 2
        elif args[i].startswith("-o") and len(args[i]) > 2:
            name, value = split_name_value(args[i][2:], filename, line)
            options[name] = value
            i += 1
        else:
            i += 1
    return options


def load_master_cf(path: str | Path, main_cf: MainCf | None = None, *,
                   strict: bool = True) -> MasterCf:
    """Read master.cf from a file, or from a directory holding master.cf."""
    path, text = read_config_file(path, "master.cf")
    master = parse_master_cf(text, str(path), main_cf=main_cf, strict=strict)
    master.path = path.resolve()
    return master
