"""What every smtpd session shares: settings, policy, cleanup, anvil, local recipients, counters,
the TLS contexts of its services and the SASL credentials.

SECURITY: built by the daemon before the privilege drop (tables, the hosts file, TLS keys and the
credentials file are read then); holds no per-client data except anvil's and AUTH's counters.
A TLS key file that the group or others may read is refused (ConfigError naming the file).
"""

from __future__ import annotations

import ipaddress
import os
import ssl
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hardener.errors import ConfigError
from hardener.mta.smtpd.anvil import Anvil
from hardener.mta.cleanup.service import Cleanup
from hardener.mta.smtpd.local_recipients import LocalRecipients
from hardener.mta.smtpd.relay_policy import PolicySettings
from hardener.mta.config.params import param_error
from hardener.mta.config.sasl import tls_level
from hardener.mta.config.settings import MtaSettings
from hardener.mta.maillog import get_logger
from hardener.mta.sasl_passwd import Credentials, load_credentials
from hardener.mta.smtpd.auth import AuthThrottle
from hardener.mta.smtpd.commands import fsspace
from hardener.postfix.tls_protocols import InvalidProtocolList, server_protocols


def _hosts_names(path: Path = Path("/etc/hosts")) -> dict[str, str]:
    """address -> first name from /etc/hosts (the only name service here; no DNS timeouts)."""
    names: dict[str, str] = {}
    try:
        for line in path.read_text(errors="replace").splitlines():
            fields = line.split("#", 1)[0].split()
            if len(fields) >= 2:
                try:
                    addr = str(ipaddress.ip_address(fields[0]))
                except ValueError:
                    continue
                names.setdefault(addr, fields[1])
    except OSError:
        pass
    return names


def _key_files(main) -> list[tuple[str, str]]:
    """(file, parameter) of every file that holds a private key."""
    if main.get("smtpd_tls_cert_file"):
        key = main.get("smtpd_tls_key_file") or main.get("smtpd_tls_cert_file")
        return [(key, "smtpd_tls_key_file" if main.get("smtpd_tls_key_file")
                 else "smtpd_tls_cert_file")]
    found = []
    for path in main.get_list("smtpd_tls_chain_files"):   # keys and certificates, mixed
        try:
            with open(path, "rb") as fh:
                if b"PRIVATE KEY-----" in fh.read(1 << 20):
                    found.append((path, "smtpd_tls_chain_files"))
        except OSError:
            pass   # the loader reports it
    return found


def check_key_file(path: str, main, name: str) -> None:
    """Refuse a private key file that the group or others may read (ConfigError, one line
    naming the file); a file that cannot be examined is left to the loader's error."""
    try:
        st = os.stat(path)
    except OSError:
        return
    if st.st_mode & 0o044:
        raise param_error(main, name, f"TLS key file {path} is readable by its group or others "
                          f"(mode {stat.S_IMODE(st.st_mode):04o}): refused, chmod 0600 it")


def tls_context_from(settings: MtaSettings) -> ssl.SSLContext | None:
    """The server TLS context for STARTTLS, or None when smtpd_tls_security_level is none/empty.
    At level encrypt a certificate that cannot be loaded is a ConfigError (every session would
    be refused); at may, STARTTLS is not offered, as Postfix does."""
    main = settings.main
    level = tls_level(main)
    if level == "none":
        return None
    cert = main.get("smtpd_tls_cert_file")
    key = main.get("smtpd_tls_key_file") or cert
    chain = main.get_list("smtpd_tls_chain_files")
    if not cert and not chain:
        raise param_error(main, "smtpd_tls_security_level",
                          "STARTTLS requested but smtpd_tls_cert_file is not set")
    for path, name in _key_files(main):
        check_key_file(path, main, name)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    _limit_protocols(ctx, settings, level)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        if cert:
            ctx.load_cert_chain(cert, key)
        elif len(chain) == 1:      # key and certificates in one file
            ctx.load_cert_chain(chain[0])
        elif len(chain) == 2:      # the key, then its certificate chain
            ctx.load_cert_chain(chain[1], chain[0])
        else:
            raise param_error(main, "smtpd_tls_chain_files", "more than one key (two files at "
                              "most: key, then chain) is not supported")
    except (OSError, ssl.SSLError) as exc:
        what = f"{cert} / key {key}" if cert else ", ".join(chain)
        if isinstance(exc, PermissionError) and os.geteuid() != 0:
            # a reload after the privilege drop: the key is root's (as it must be) and the
            # running daemon keeps the context it built as root
            return None
        if level == "encrypt":
            raise param_error(main, "smtpd_tls_security_level",
                              f"cannot load TLS certificate {what}: {exc} (mandatory TLS)") \
                from None
        get_logger("smtpd").warning(f"cannot load TLS certificate {what}: {exc}; "
                                    "TLS disabled (no STARTTLS offered)")
        return None
    return ctx


# ssl.TLSVersion of each Postfix protocol name hardener's smtpd can offer (TLS 1.2 is its floor)
_TLS_VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}


def _limit_protocols(ctx: ssl.SSLContext, settings: MtaSettings, level: str) -> None:
    """Enable the protocol versions the list in force allows (read as Postfix reads it, the same
    function lint uses), never below TLS 1.2; ConfigError for a list Postfix would refuse or one
    that leaves nothing at or above TLS 1.2."""
    main = settings.main
    name = "smtpd_tls_mandatory_protocols" if level == "encrypt" else "smtpd_tls_protocols"
    value = main.get(name)
    try:
        allowed = [_TLS_VERSIONS[p] for p in server_protocols(value) if p in _TLS_VERSIONS]
    except InvalidProtocolList as exc:
        raise param_error(main, name, f"invalid TLS protocol list {value!r}: {exc}") from None
    if not allowed:
        raise param_error(main, name,
                          f"{value!r} leaves no protocol at or above TLSv1.2 (hardener's floor)")
    ctx.minimum_version, ctx.maximum_version = min(allowed), max(allowed)


_TLS_PARAMETERS = ("smtpd_tls_security_level", "smtpd_use_tls", "smtpd_enforce_tls",
                   "smtpd_tls_cert_file", "smtpd_tls_key_file", "smtpd_tls_chain_files",
                   "smtpd_tls_protocols", "smtpd_tls_mandatory_protocols")


def _tls_key(settings: MtaSettings) -> tuple[str, ...]:
    """What the TLS context of a settings view depends on (views that agree share one)."""
    return tuple(settings.main.get(name) for name in _TLS_PARAMETERS)


def _credentials(settings: MtaSettings) -> Credentials | None:
    """The SASL users, when any smtpd service enables AUTH (ConfigError for a bad file)."""
    views = [settings, *settings.services.values()]
    if not any(v.sasl is not None and v.sasl.enabled for v in views):
        return None
    path = settings.sasl.passwd_file
    credentials = load_credentials(path)
    if not credentials.users:
        get_logger("smtpd").warning(f"no SASL users in {path}: every AUTH fails (add them with "
                                    "`hardener mta passwd USER`)")
    return credentials


@dataclass
class SmtpdContext:
    """Shared state of the smtpd listeners in one daemon."""

    settings: MtaSettings
    policy: PolicySettings
    cleanup: Cleanup
    anvil: Anvil
    recipients: LocalRecipients
    tls: ssl.SSLContext | None = None
    # services whose -o overrides change TLS: their own context (else `tls`)
    tls_services: dict[str, ssl.SSLContext | None] = field(default_factory=dict)
    credentials: Credentials | None = None    # None: no service has smtpd_sasl_auth_enable
    auth: AuthThrottle = field(default_factory=lambda: AuthThrottle(0, 60, ()))
    host_names: dict[str, str] = field(default_factory=dict)
    sessions: dict[str, int] = field(default_factory=dict)   # per service, kept by SmtpdService
    stopping: bool = False
    # (block size, blocks free) of the queue file system: a test seam for a disk that cannot
    # easily be filled for real
    fsspace: Callable[[str], tuple[int, int]] = fsspace

    @classmethod
    def build(cls, settings: MtaSettings, cleanup: Cleanup) -> "SmtpdContext":
        """Everything derived from settings (ConfigError if a table cannot be read)."""
        try:
            recipients = LocalRecipients(settings.local_recipient_maps, settings.alias_maps,
                                         settings.recipient_delimiter)
        except ConfigError as exc:
            file, line = settings.where("local_recipient_maps")
            raise ConfigError(exc.message, file=exc.file or file, line=line,
                              field="local_recipient_maps") from None
        anvil = Anvil(settings.conn_count_limit, settings.conn_rate_limit, settings.rate_time_unit,
                      settings.event_limit_exceptions)
        tls = tls_context_from(settings)
        tls_services = {name: tls_context_from(view) if _tls_key(view) != _tls_key(settings)
                        else tls for name, view in settings.services.items()}
        auth = AuthThrottle(settings.auth_rate_limit, settings.rate_time_unit,
                            settings.event_limit_exceptions)
        return cls(settings=settings, policy=PolicySettings.from_settings(settings),
                   cleanup=cleanup, anvil=anvil, recipients=recipients, tls=tls,
                   tls_services=tls_services, credentials=_credentials(settings), auth=auth,
                   host_names=_hosts_names())

    def tls_for(self, service: str) -> ssl.SSLContext | None:
        """The STARTTLS context of master.cf service `service` (None: no STARTTLS)."""
        return self.tls_services.get(service, self.tls)

    def client_name(self, addr: str) -> str:
        """Postfix-style client name: from /etc/hosts, else 'unknown'."""
        return self.host_names.get(addr, "unknown")
