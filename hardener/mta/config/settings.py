"""The MTA's typed view of main.cf and master.cf, validated at load.

Every parameter the daemon honours is read here, through hardener.postfix (the project's one parser),
and checked: a value the daemon cannot honour (an unknown restriction, a listen address no interface
holds, a bad number) raises ConfigError naming file, line and parameter, so `hardener mta serve`
refuses to start with one line and exit 2.

SECURITY: reads configuration files owned by root; runs before the privilege drop.
Sections: FRONT (smtpd, cleanup, daemon) and BACK (qmgr, delivery: appended at the end).
"""

from __future__ import annotations

import ipaddress
import os
import pwd
import re
import socket
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hardener.errors import ConfigError
from hardener.mta.config.params import conf_int, conf_time, param_error
from hardener.mta.config.sasl import SaslSettings, sasl_settings, tls_level
from hardener.postfix import tables
from hardener.postfix.defaults import protocol_families
from hardener.postfix.interfaces import local_interfaces
from hardener.postfix.maincf import OVERRIDE_FILE, MainCf, load_main_cf
from hardener.postfix.mastercf import load_master_cf
from hardener.postfix.mynetworks import parse_mynetworks

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Restriction names smtpd implements (relay_policy.py); anything else refuses to start.
KNOWN_RESTRICTIONS = frozenset({
    "permit", "reject", "defer", "permit_mynetworks", "permit_sasl_authenticated",
    "reject_unauth_destination", "defer_unauth_destination", "reject_unauth_pipelining",
    "reject_non_fqdn_recipient", "reject_non_fqdn_sender", "reject_unlisted_recipient",
    "reject_invalid_helo_hostname", "reject_non_fqdn_helo_hostname", "permit_auth_destination",
})
RESTRICTION_LISTS = ("smtpd_client_restrictions", "smtpd_helo_restrictions",
                     "smtpd_sender_restrictions", "smtpd_relay_restrictions",
                     "smtpd_recipient_restrictions", "smtpd_data_restrictions")
DEFAULT_SESSION_LIMIT = 3600  # seconds; hardener_smtpd_session_limit overrides


@dataclass(frozen=True)
class Listener:
    """One smtpd listening socket from master.cf (service name resolved to address and port).

    stress_capable: the service may enter stress mode when its process limit is reached. As in
    Postfix's master, a service listening only on loopback addresses (a content filter's
    re-injection port, for example) or limited to one process never does.
    """

    address: str
    port: int
    service: str
    process_limit: int
    stress_capable: bool = False
    chroot: bool = False          # master.cf's chroot column: smtpd runs jailed in the queue dir


@dataclass(frozen=True)
class SessionLimits:
    """smtpd's per-session limits, read once for normal operation and once under stress.

    The main.cf defaults change under stress (`${stress?{10}:{300}}s` and the like): the values
    here are those expressions expanded with stress unset, or with stress=yes as Postfix's master
    passes it to smtpd processes started while a service is at its process limit.
    """

    timeout: int                 # smtpd_timeout (s)
    starttls_timeout: int        # smtpd_starttls_timeout (s)
    hard_error_limit: int        # smtpd_hard_error_limit
    soft_error_limit: int        # smtpd_soft_error_limit
    error_sleep_time: int        # smtpd_error_sleep_time (s)
    junk_command_limit: int      # smtpd_junk_command_limit
    per_request_deadline: bool   # smtpd_per_request_deadline (smtpd_per_record_deadline before 3.7)
    min_data_rate: int           # smtpd_min_data_rate (bytes/s) for the DATA deadline


@dataclass
class MtaSettings:
    """Everything the daemon needs, typed and validated."""

    config_dir: Path
    main: MainCf
    master: Any
    myhostname: str
    mydomain: str
    myorigin: str
    mydestination: list[str]
    relay_domains: list[str]
    mynetworks: list[Network]
    inet_interfaces: list[str]
    local_addresses: list[str]
    listeners: list[Listener]
    queue_directory: Path
    mail_owner: str
    smtpd_banner: str
    helo_required: bool
    disable_vrfy: bool
    restrictions: dict[str, list[str]]
    message_size_limit: int
    recipient_limit: int
    line_length_limit: int
    bare_newline: str  # "normalize" or "reject"
    bare_newline_exclusions: list[Network]
    bare_newline_reject_code: int
    forbid_unauth_pipelining: bool   # smtpd_forbid_unauth_pipelining (only "yes" turns it on)
    conn_count_limit: int
    conn_rate_limit: int
    rate_time_unit: int
    event_limit_exceptions: list[Network]
    limits: SessionLimits
    stress_limits: SessionLimits
    session_limit: int
    process_limit: int
    alias_maps: list[str]
    local_recipient_maps: list[str]
    reject_unlisted_recipient: bool
    unknown_local_recipient_reject_code: int
    relay_domains_reject_code: int
    allow_percent_hack: bool
    swap_bangpath: bool
    resolve_dequoted_address: bool
    resolve_null_domain: bool
    recipient_delimiter: str
    append_at_myorigin: bool
    append_dot_mydomain: bool
    recipient_overshoot_limit: int
    queue_minfree: int
    header_size_limit: int
    maillog_file: str
    syslog_name: str
    extra: dict[str, Any] = field(default_factory=dict)  # BACK's typed settings live here
    warnings: list[str] = field(default_factory=list)  # logged by the daemon once the log is open
    sasl: SaslSettings | None = None     # AUTH (config/sasl.py)
    tls_level: str = "none"              # smtpd_tls_security_level: none, may or encrypt
    auth_rate_limit: int = 0             # smtpd_client_auth_rate_limit (AUTH commands per unit)
    # smtpd services whose master.cf -o overrides change smtpd's settings: name -> their view
    services: dict[str, "MtaSettings"] = field(default_factory=dict)

    def for_service(self, name: str) -> "MtaSettings":
        """The settings an smtpd session of master.cf service `name` runs with: main.cf with
        that service's -o overrides applied (Postfix: for that service only)."""
        return self.services.get(name, self)

    def where(self, name: str) -> tuple[str, int | None]:
        """(file, line) of parameter `name` for error messages."""
        loc = self.main.location(name)
        return (loc.file, loc.line) if loc else (self.main.filename, None)


def _mynetworks(main: MainCf) -> list[Any]:
    """mynetworks through the project parser: networks, or (network, True) for a !negated entry."""

    entries = parse_mynetworks(main)
    return [(e.network, True) if e.negated else e.network for e in entries]


def _networks(main: MainCf, name: str) -> list[Any]:
    """A client address list such as smtpd_client_event_limit_exceptions (CIDR, [v6]/len,
    addresses); when it is mynetworks' value (the usual default), mynetworks' own reading."""
    if main.get(name) == main.get("mynetworks"):
        return _mynetworks(main)
    nets: list[Network] = []
    for item in main.get_list(name):
        text = item
        if text.startswith("!"):
            raise param_error(main, name, f"negated entry {item!r} is not supported")
        if ":" in text and text.startswith("["):
            text = text.replace("[", "").replace("]", "")
        if "/" in text and not text.split("/")[0]:
            raise param_error(main, name, f"malformed network {item!r}")
        if text.startswith("/") or ":" in text.split("/")[0] and text.count(":") == 1:
            raise param_error(main, name, f"table {item!r} is not supported in {name}")
        try:
            nets.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise param_error(main, name, f"malformed network {item!r}") from None
    return nets


def session_limits(main: MainCf) -> SessionLimits:
    """The per-session limits as this main.cf gives them (see SessionLimits)."""
    return SessionLimits(
        timeout=conf_time(main, "smtpd_timeout", 1),
        starttls_timeout=conf_time(main, "smtpd_starttls_timeout", 1),
        hard_error_limit=conf_int(main, "smtpd_hard_error_limit", 1),
        soft_error_limit=conf_int(main, "smtpd_soft_error_limit", 1),
        error_sleep_time=conf_time(main, "smtpd_error_sleep_time", 0),
        junk_command_limit=conf_int(main, "smtpd_junk_command_limit", 1),
        per_request_deadline=main.get_bool("smtpd_per_request_deadline"),
        min_data_rate=conf_int(main, "smtpd_min_data_rate", 1),
    )


def _queue_minfree(main: MainCf, warnings: list[str]) -> int:
    """queue_minfree, with Postfix's warning when it is below 1.5 x message_size_limit."""
    minfree = conf_int(main, "queue_minfree")
    limit = main.get_int("message_size_limit")
    if minfree > 0 and limit > 0 and minfree / 1.5 < limit:
        warnings.append(f"queue_minfree({minfree}) should be at least "
                        f"1.5*message_size_limit({limit})")
    return minfree


def _listen_addresses(main: MainCf, families: tuple[int, ...]) -> tuple[list[str], list[str]]:
    """(addresses to bind for inet_interfaces, every local interface address)."""

    local = [str(i.ip) for i in local_interfaces(families)]
    wanted: list[str] = []
    for item in main.get_list("inet_interfaces"):
        low = item.lower()
        if low == "all":
            fam_any = {socket.AF_INET: "0.0.0.0", socket.AF_INET6: "::"}
            return [fam_any[f] for f in families], local
        if low in ("loopback-only", "localhost"):
            wanted += [a for a in ("127.0.0.1", "::1") if a in local]
            continue
        addr = item.strip("[]")
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            try:
                ip = ipaddress.ip_address(socket.gethostbyname(addr))
            except (OSError, ValueError):
                raise param_error(main, "inet_interfaces", f"cannot resolve {item!r}") from None
        if str(ip) not in local:
            raise param_error(main, "inet_interfaces",
                              f"address {ip} is not configured on any interface")
        wanted.append(str(ip))
    if not wanted:
        raise param_error(main, "inet_interfaces", "no listen address")
    return wanted, local


def _master_services(config_dir: Path, main: MainCf) -> Any:

    return load_master_cf(config_dir / "master.cf", main)


def _listeners(main: MainCf, master: Any, inet_addrs: list[str], local: list[str],
               warnings: list[str]) -> list[Listener]:
    result: list[Listener] = []
    for svc in master.find_all(type="inet", command="smtpd"):
        if svc.listen_port is None:
            raise ConfigError(f"unknown service port {svc.listen_port_text!r}", file=svc.file,
                              line=svc.line, field=svc.name)
        limit = svc.maxproc if svc.maxproc > 0 else 1000000
        if svc.listen_host:
            addr = svc.listen_host.strip("[]")
            if addr not in local and addr not in ("0.0.0.0", "::"):
                raise ConfigError(f"listen address {addr} is not configured on any interface",
                                  file=svc.file, line=svc.line, field=svc.name)
            addrs = [addr]
        else:
            addrs = list(inet_addrs)
        # Postfix's master: no stress mode for a service that listens on loopback only or that
        # runs one process (MASTER_FLAG_LOCAL_ONLY, max_proc > 1)
        stress = limit > 1 and not all(_is_loopback(a) for a in addrs)
        for addr in addrs:
            result.append(Listener(addr, svc.listen_port, svc.name, limit, stress,
                                   bool(svc.chroot)))
    if not result:
        raise ConfigError("no smtpd service of type inet", file=str(master.path or "master.cf"))
    return result


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _restrictions(main: MainCf) -> dict[str, list[str]]:
    lists: dict[str, list[str]] = {}
    for name in RESTRICTION_LISTS:
        items = [i.lower() for i in main.get_list(name)]
        for item in items:
            if item not in KNOWN_RESTRICTIONS:
                raise param_error(main, name, f"unknown or unsupported restriction {item!r}")
        lists[name] = items
    if main.compatibility_level == "0" and not main.is_set("smtpd_relay_restrictions"):
        lists["smtpd_relay_restrictions"] = []
    if not any(r in ("reject_unauth_destination", "defer_unauth_destination", "reject", "defer")
               for r in lists["smtpd_relay_restrictions"] + lists["smtpd_recipient_restrictions"]):
        raise param_error(main, "smtpd_recipient_restrictions",
                          "neither smtpd_relay_restrictions nor smtpd_recipient_restrictions has "
                          "reject_unauth_destination, defer_unauth_destination, reject or defer "
                          "(an open relay)")
    return lists


def _bare_newline(main: MainCf) -> str:
    value = main.get("smtpd_forbid_bare_newline").lower()
    # hardener never ends DATA on a non-standard end-of-data form: 'no' behaves as normalize.
    mapping = {"no": "normalize", "normalize": "normalize", "yes": "normalize", "reject": "reject"}
    if value not in mapping:
        raise param_error(main, "smtpd_forbid_bare_newline", f"unknown value {value!r}")
    return mapping[value]


def _check_unsupported(main: MainCf) -> None:
    """Security-relevant features this part of the daemon cannot honour: refuse, don't ignore."""
    tls_level(main)   # none, may and encrypt are honoured; anything else is refused


def _banner(main: MainCf) -> str:
    """smtpd_banner; never a version. Unset: '$myhostname ESMTP' (Postfix's default would name
    the software as '$mail_name', which is not even true here)."""
    if not main.is_set("smtpd_banner"):
        return f"{main.get('myhostname')} ESMTP"
    raw = main.raw("smtpd_banner") or ""
    banner = main.get("smtpd_banner")
    if not banner.strip():
        raise param_error(main, "smtpd_banner", "empty banner")
    if "mail_version" in raw or re.search(r"\b\d+\.\d+(\.\d+)?\b", banner.replace(
            main.get("myhostname"), "")):
        raise param_error(main, "smtpd_banner",
                          f"the banner would disclose a version: {banner!r}")
    return banner


def _domains(main: MainCf, name: str) -> list[str]:
    out = []
    for item in main.get_list(name):
        if ":" in item and not item.startswith("["):

            try:
                table = tables.read_table(item)
            except Exception as exc:  # the parser raises ConfigError/InputError with details
                raise param_error(main, name, f"cannot read table {item!r}: {exc}") from None
            out += [k.lower() for k in (table.keys() if hasattr(table, "keys") else table)]
        else:
            out.append(item.lower().rstrip("."))
    return out


def load_settings(config_dir: str | os.PathLike[str]) -> MtaSettings:
    """Read and validate DIR/main.cf and DIR/master.cf (ConfigError on anything unusable)."""
    config_dir = Path(config_dir)
    main = load_main_cf(config_dir / "main.cf")
    if not (config_dir / "master.cf").is_file():
        raise ConfigError("cannot read master.cf: no such file", file=str(config_dir / "master.cf"))
    master = _master_services(config_dir, main)
    _check_unsupported(main)

    try:
        families = protocol_families(main.get("inet_protocols"))
    except ValueError as exc:
        raise param_error(main, "inet_protocols", str(exc)) from None
    inet_addrs, local = _listen_addresses(main, families)
    mail_owner = main.get("mail_owner")
    try:
        pwd.getpwnam(mail_owner)
    except KeyError:
        raise param_error(main, "mail_owner", f"no such user {mail_owner!r}") from None
    queue_dir = Path(main.get("queue_directory"))
    if not queue_dir.is_absolute():
        raise param_error(main, "queue_directory", "must be an absolute path")
    maillog = main.get("maillog_file")
    warnings: list[str] = []
    settings = MtaSettings(
        config_dir=config_dir, main=main, master=master,
        inet_interfaces=inet_addrs, local_addresses=local,
        listeners=_listeners(main, master, inet_addrs, local, warnings),
        queue_directory=queue_dir, mail_owner=mail_owner,
        conn_count_limit=conf_int(main, "smtpd_client_connection_count_limit"),
        conn_rate_limit=conf_int(main, "smtpd_client_connection_rate_limit"),
        rate_time_unit=max(1, main.get_time("anvil_rate_time_unit")),
        event_limit_exceptions=_networks(main, "smtpd_client_event_limit_exceptions"),
        auth_rate_limit=conf_int(main, "smtpd_client_auth_rate_limit"),
        session_limit=(conf_int(main, "hardener_smtpd_session_limit", 1)
                       if main.is_set("hardener_smtpd_session_limit") else DEFAULT_SESSION_LIMIT),
        process_limit=conf_int(main, "default_process_limit", 1),
        alias_maps=main.get_list("alias_maps"),
        local_recipient_maps=main.get_list("local_recipient_maps"),
        queue_minfree=_queue_minfree(main, warnings),
        header_size_limit=conf_int(main, "header_size_limit", 1),
        maillog_file=maillog,
        syslog_name=main.get("syslog_name") if main.is_set("syslog_name") else "hardener",
        warnings=warnings,
        **_front_fields(main, warnings),
    )
    settings.services = _service_settings(settings)
    for hook in _BACK_LOADERS:
        hook(settings)
    return settings


# Parameters that hold for the whole daemon (one queue, one log, one anvil, one table of local
# recipients, one credentials file): an smtpd service's -o cannot change them.
DAEMON_WIDE = frozenset({
    "queue_directory", "mail_owner", "maillog_file", "inet_interfaces", "inet_protocols",
    "config_directory", "smtpd_client_connection_count_limit",
    "smtpd_client_connection_rate_limit", "anvil_rate_time_unit",
    "smtpd_client_event_limit_exceptions", "smtpd_client_auth_rate_limit",
    "default_process_limit", "queue_minfree", "header_size_limit", "alias_maps",
    "local_recipient_maps", "hardener_smtpd_session_limit", "hardener_sasl_passwd_file",
})
_PLAIN_AUTH = ("smtpd_sasl_auth_enable = yes with smtpd_tls_auth_only = no: AUTH is offered "
               "before STARTTLS, passwords may cross the network in clear (HRD-AUTH-001)")
# -o parameters that only name the process in the log (hardener logs as hardener/smtpd)
_COSMETIC = frozenset({"syslog_name"})


def _front_fields(main: MainCf, warnings: list[str]) -> dict[str, Any]:
    """The settings of an smtpd session that a master.cf service may override with -o."""
    sasl = sasl_settings(main)
    level = tls_level(main)
    if sasl.enabled and not sasl.tls_only and sasl.mechanisms and not warnings.count(_PLAIN_AUTH):
        warnings.append(_PLAIN_AUTH)
    return dict(
        myhostname=main.get("myhostname"), mydomain=main.get("mydomain"),
        myorigin=main.get("myorigin"),
        mydestination=_domains(main, "mydestination"),
        relay_domains=_domains(main, "relay_domains"),
        mynetworks=_mynetworks(main),
        smtpd_banner=_banner(main),
        helo_required=main.get_bool("smtpd_helo_required"),
        disable_vrfy=main.get_bool("disable_vrfy_command"),
        restrictions=_restrictions(main),
        message_size_limit=conf_int(main, "message_size_limit"),
        recipient_limit=conf_int(main, "smtpd_recipient_limit", 1),
        line_length_limit=conf_int(main, "line_length_limit", 512),
        bare_newline=_bare_newline(main),
        bare_newline_exclusions=_networks(main, "smtpd_forbid_bare_newline_exclusions"),
        bare_newline_reject_code=conf_int(main, "smtpd_forbid_bare_newline_reject_code",
                                          400, 599),
        forbid_unauth_pipelining=main.get("smtpd_forbid_unauth_pipelining").lower() == "yes",
        limits=session_limits(main),
        stress_limits=session_limits(main.with_overrides({"stress": "yes"})),
        # reject_unlisted_recipient named in a list turns the check on even when the global
        # switch is off (smtpd runs it after the lists, as Postfix does at the end of RCPT)
        reject_unlisted_recipient=(main.get_bool("smtpd_reject_unlisted_recipient") or any(
            "reject_unlisted_recipient" in main.get_list(n) for n in RESTRICTION_LISTS)),
        unknown_local_recipient_reject_code=conf_int(
            main, "unknown_local_recipient_reject_code", 400, 599),
        relay_domains_reject_code=conf_int(main, "relay_domains_reject_code", 400, 599),
        allow_percent_hack=main.get_bool("allow_percent_hack"),
        swap_bangpath=main.get_bool("swap_bangpath"),
        resolve_dequoted_address=main.get_bool("resolve_dequoted_address"),
        resolve_null_domain=main.get_bool("resolve_null_domain"),
        recipient_delimiter=main.get("recipient_delimiter"),
        append_at_myorigin=main.get_bool("append_at_myorigin"),
        append_dot_mydomain=main.get_bool("append_dot_mydomain"),
        recipient_overshoot_limit=conf_int(main, "smtpd_recipient_overshoot_limit", 1),
        sasl=sasl, tls_level=level,
    )


def _service_settings(base: MtaSettings) -> dict[str, MtaSettings]:
    """Per smtpd service with -o overrides: main.cf with them applied (Postfix's semantics:
    `$name` expands against main.cf as overridden, for that service only). ConfigError naming
    the master.cf line for an override that cannot be honoured."""
    services: dict[str, MtaSettings] = {}
    for svc in base.master.find_all(type="inet", command="smtpd"):
        options = {k: v for k, v in svc.options.items() if k not in _COSMETIC}
        if not options:
            continue
        for name in options:
            if name in DAEMON_WIDE:
                raise ConfigError(f"-o {name} cannot differ per service in hardener's MTA (one "
                                  "daemon-wide value): set it in main.cf", file=svc.file,
                                  line=svc.line, field=name)
        main = base.main.with_overrides(options)
        try:
            _check_unsupported(main)
            fields = _front_fields(main, base.warnings)
        except ConfigError as exc:
            if exc.file != OVERRIDE_FILE:
                raise
            raise ConfigError(f"service {svc.name}: {exc.message}", file=svc.file,
                              line=svc.line, field=exc.field) from None
        services[svc.name] = replace(base, main=main, services={}, **fields)
    return services


# ---- BACK section (qmgr, delivery): BACK appends its loaders here ---------------------------
# A loader takes the MtaSettings, reads what it needs from settings.main / settings.master,
# validates (numbers through config/params.py conf_int/conf_time, anything else raises
# param_error(settings.main, name, message)) and stores its typed view in settings.extra["qmgr"]
# (or another key).
_BACK_LOADERS: list[Any] = []


def _load_back(settings: MtaSettings) -> None:
    # qmgr/settings.py imports the delivery agents and qmgr: only the back end needs them, and
    # importing them here would make config/ depend on every part it configures.
    from hardener.mta.qmgr.settings import load_back_settings

    load_back_settings(settings)


_BACK_LOADERS.append(_load_back)
