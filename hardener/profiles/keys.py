"""Every key a profile, a --vars file or --set may give: its type, default and meaning.

Keys are Postfix parameter names wherever Postfix has one, so admins learn nothing new. The few that
are hardener's own (`internal_nexthop`, `admin_address`, `smtpd_listen`, `hardener_executable`)
stand for what Postfix spreads over several files. Hardened settings that no profile should change
(disable_vrfy_command, smtpd_relay_restrictions, ...) are not keys: the templates set them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hardener.profiles import values as v


@dataclass(frozen=True)
class KeySpec:
    """One configurable key."""

    name: str
    type: str
    parse: Callable[[object], v.Value]
    default: v.Value | None
    meaning: str
    postfix: bool = True

    def default_text(self) -> str:
        """The default as shown by `hardener profiles show`."""
        if self.default is None:
            return "(unset)"
        if isinstance(self.default, tuple):
            return " ".join(self.default) or "(empty)"
        return self.default or "(empty)"


_SMTP_TLS_LEVELS = v.enum("none", "may", "encrypt", "dane", "verify", "secure")
_SMTPD_TLS_LEVELS = v.enum("none", "may", "encrypt")

KEYS: tuple[KeySpec, ...] = (
    KeySpec("myhostname", "fqdn", v.parse_fqdn, None,
            "Host name in the SMTP greeting and in Received: headers (unset: the system host name)."),
    KeySpec("mydomain", "fqdn", v.parse_fqdn, None,
            "Internet domain of this host (unset: myhostname minus its first label)."),
    KeySpec("myorigin", "domain", v.parse_domain, None,
            "Domain appended to unqualified sender addresses (unset: $myhostname)."),
    KeySpec("inet_interfaces", "interface list", v.parse_interfaces, ("all",),
            "Addresses smtpd listens on: all, loopback-only, or IP addresses."),
    KeySpec("inet_protocols", "all|ipv4|ipv6", v.enum("all", "ipv4", "ipv6"), "all",
            "IP protocols used: all, ipv4 or ipv6."),
    KeySpec("smtpd_listen", "listen", v.parse_listen, "smtp",
            "First column of the smtpd line in master.cf: smtp (port 25 on inet_interfaces), PORT, "
            "ADDRESS:PORT or [IPv6]:PORT.", postfix=False),
    KeySpec("mydestination", "domain list", v.parse_domain_list, (),
            "Domains delivered on this host (empty on gateways: nothing is delivered locally)."),
    KeySpec("mynetworks", "network list", v.parse_network_list, ("127.0.0.0/8", "[::1]/128"),
            "Trusted client networks that may relay, written explicitly ([IPv6]/len in brackets)."),
    KeySpec("relay_domains", "domain list", v.parse_domain_list, (),
            "Domains this host accepts mail for from anyone and forwards (MX gateways)."),
    KeySpec("relayhost", "next hop", v.parse_optional_nexthop, "",
            "Where outbound mail goes: [host]:port (empty: straight to each domain's MX)."),
    KeySpec("internal_nexthop", "next hop", v.parse_optional_nexthop, "",
            "Where mail for relay_domains goes, e.g. [10.1.2.3]:25; rendered into the transport "
            "table.", postfix=False),
    KeySpec("admin_address", "email", v.parse_email, None,
            "Who reads mail for root (aliases; unset: postmaster@ the domain of myhostname).",
            postfix=False),
    KeySpec("local_transport", "error text", v.parse_error_text, "local delivery is disabled on this host",
            "Rendered as local_transport = error:TEXT: gateways deliver nothing locally."),
    KeySpec("message_size_limit", "integer", v.parse_positive_int, "10240000",
            "Largest message accepted, in bytes (never 0)."),
    KeySpec("compatibility_level", "version", v.parse_compatibility_level, "3.6",
            "Postfix compatibility level; 3.6 turns on safe defaults."),
    KeySpec("smtpd_banner", "banner", v.parse_banner, "$myhostname ESMTP",
            "Text after 220 in the greeting; no software name or version."),
    KeySpec("smtpd_client_restrictions", "restriction list", v.parse_restrictions,
            ("permit_mynetworks", "reject"),
            "Which clients may connect at all (DISA STIG: permit_mynetworks, reject)."),
    KeySpec("smtpd_tls_security_level", "none|may|encrypt", _SMTPD_TLS_LEVELS, "may",
            "TLS offered by smtpd: none, may (STARTTLS offered) or encrypt (required)."),
    KeySpec("smtpd_tls_cert_file", "path", v.parse_optional_path, "/etc/ssl/certs/ssl-cert-snakeoil.pem",
            "Server certificate (PEM, with its chain)."),
    KeySpec("smtpd_tls_key_file", "path", v.parse_optional_path, "/etc/ssl/private/ssl-cert-snakeoil.key",
            "Private key of the server certificate."),
    KeySpec("smtpd_tls_protocols", "tls floor", v.protocol_floor, ">=TLSv1.2",
            "Lowest TLS version smtpd offers (>=TLSv1.2 or >=TLSv1.3)."),
    KeySpec("smtp_tls_security_level", "none|may|encrypt|dane|verify|secure", _SMTP_TLS_LEVELS, "may",
            "TLS used when sending: may, encrypt (required), dane, verify or secure."),
    KeySpec("smtp_tls_CAfile", "path", v.parse_optional_path, "",
            "CA bundle to verify relays at verify/secure level (empty: not set)."),
    KeySpec("smtp_tls_protocols", "tls floor", v.protocol_floor, ">=TLSv1.2",
            "Lowest TLS version used when sending (>=TLSv1.2 or >=TLSv1.3)."),
    KeySpec("smtpd_sasl_auth_enable", "yes/no", v.parse_bool, "no",
            "Offer SMTP AUTH to clients (after STARTTLS only)."),
    KeySpec("smtpd_sasl_type", "dovecot|cyrus", v.enum("dovecot", "cyrus"), "dovecot",
            "SASL implementation smtpd asks to check passwords."),
    KeySpec("smtpd_sasl_path", "sasl path", v.parse_sasl_path, "private/auth",
            "Socket (dovecot, relative to the queue directory) or application name (cyrus)."),
    KeySpec("config_directory", "path", v.parse_path, "/etc/postfix",
            "Where the rendered files will be installed; paths of tables and the unit use it.",
            postfix=False),
    KeySpec("queue_directory", "path", v.parse_optional_path, "",
            "Queue directory (empty: Postfix's default, /var/spool/postfix)."),
    KeySpec("data_directory", "path", v.parse_optional_path, "",
            "Directory for Postfix's caches (empty: Postfix's default, /var/lib/postfix)."),
    KeySpec("maillog_file", "path", v.parse_optional_path, "",
            "Log file written by postlogd / hardener's MTA (empty: syslog, Postfix's default)."),
    KeySpec("hardener_executable", "path", v.parse_path, "/usr/local/bin/hardener",
            "The hardener command the systemd unit starts (hardener mta serve).", postfix=False),
)

BY_NAME: dict[str, KeySpec] = {k.name: k for k in KEYS}
DEFAULT_QUEUE_DIRECTORY = "/var/spool/postfix"
DEFAULT_DATA_DIRECTORY = "/var/lib/postfix"


def spec(name: str) -> KeySpec:
    """The KeySpec of `name`; KeyError if the key is unknown."""
    return BY_NAME[name]
