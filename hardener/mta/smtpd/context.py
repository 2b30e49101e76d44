"""What every smtpd session shares: settings, policy, cleanup, anvil, local recipients, counters.

SECURITY: built by the daemon before the privilege drop (tables and the hosts file are read then);
holds no per-client data except anvil's counters.
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hardener.errors import ConfigError
from hardener.mta.smtpd.anvil import Anvil
from hardener.mta.cleanup.service import Cleanup
from hardener.mta.smtpd.local_recipients import LocalRecipients
from hardener.mta.smtpd.relay_policy import PolicySettings
from hardener.mta.config.settings import MtaSettings
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


def tls_context_from(settings: MtaSettings) -> ssl.SSLContext | None:
    """The server TLS context for STARTTLS, or None when smtpd_tls_security_level is none/empty."""
    main = settings.main
    level = main.get("smtpd_tls_security_level").lower()
    if level in ("", "none"):
        return None
    cert = main.get("smtpd_tls_cert_file") or main.get("smtpd_tls_chain_files")
    key = main.get("smtpd_tls_key_file") or cert
    if not cert:
        loc = main.location("smtpd_tls_security_level")
        raise ConfigError("STARTTLS requested but smtpd_tls_cert_file is not set",
                          file=loc.file if loc else main.filename, line=loc.line if loc else None,
                          field="smtpd_tls_security_level")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    _limit_protocols(ctx, settings, level)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        # As Postfix at level "may": without a usable certificate, serve without STARTTLS.
        from hardener.mta.maillog import get_logger

        get_logger("smtpd").warning(f"cannot load TLS certificate {cert} / key {key}: {exc}; "
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
    loc = main.location(name)
    where = {"file": loc.file if loc else main.filename, "line": loc.line if loc else None,
             "field": name}
    try:
        allowed = [_TLS_VERSIONS[p] for p in server_protocols(value) if p in _TLS_VERSIONS]
    except InvalidProtocolList as exc:
        raise ConfigError(f"invalid TLS protocol list {value!r}: {exc}", **where) from None
    if not allowed:
        raise ConfigError(f"{value!r} leaves no protocol at or above TLSv1.2 (hardener's floor)",
                          **where)
    ctx.minimum_version, ctx.maximum_version = min(allowed), max(allowed)


@dataclass
class SmtpdContext:
    """Shared state of the smtpd listeners in one daemon."""

    settings: MtaSettings
    policy: PolicySettings
    cleanup: Cleanup
    anvil: Anvil
    recipients: LocalRecipients
    tls: ssl.SSLContext | None = None
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
        return cls(settings=settings, policy=PolicySettings.from_settings(settings),
                   cleanup=cleanup, anvil=anvil, recipients=recipients,
                   tls=tls_context_from(settings), host_names=_hosts_names())

    def client_name(self, addr: str) -> str:
        """Postfix-style client name: from /etc/hosts, else 'unknown'."""
        return self.host_names.get(addr, "unknown")
