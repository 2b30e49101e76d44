"""The control catalog (DESIGN.md, "Control catalog").

Every finding hardener reports names a control from this table; no check carries its own title,
rationale or fix text. Ids and slugs are stable once released: add rows, never renumber.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, IntEnum


class Severity(IntEnum):
    """Finding severity, ordered so that comparisons work (INFO < ... < CRITICAL)."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        """The lowercase name used on the command line and in reports."""
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> "Severity":
        """Severity from its lowercase name; ValueError names the allowed values."""
        try:
            return cls[text.strip().upper()]
        except KeyError:
            allowed = ", ".join(s.label for s in cls)
            raise ValueError(f"unknown severity {text!r} (one of: {allowed})") from None


class Vantage(str, Enum):
    """Where a control can be checked from."""

    CONFIG = "config"
    NETWORK = "network"
    HOST = "host"


@dataclass(frozen=True)
class Reference:
    """A benchmark or document that backs a control."""

    source: str
    ident: str
    url: str = ""

    def __str__(self) -> str:
        return f"{self.source} {self.ident}".strip()


@dataclass(frozen=True)
class Control:
    """One row of the catalog."""

    id: str
    slug: str
    title: str
    severity: Severity
    vantages: tuple[Vantage, ...]
    rationale: str
    remediation: str
    references: tuple[Reference, ...] = ()
    parameters: tuple[str, ...] = field(default=())

    @property
    def security_severity(self) -> str:
        """CVSS-like score for SARIF's `security-severity` property (GitHub code scanning bands)."""
        return {Severity.CRITICAL: "9.5", Severity.HIGH: "8.0", Severity.MEDIUM: "5.5",
                Severity.LOW: "3.0", Severity.INFO: "0.0"}[self.severity]


_C, _N, _H = Vantage.CONFIG, Vantage.NETWORK, Vantage.HOST

_ACCESS_README = Reference("Postfix", "SMTPD_ACCESS_README", "https://www.postfix.org/SMTPD_ACCESS_README.html")
_STIG_CLIENT = Reference("DISA STIG", "smtpd_client_restrictions (RHEL-07-040680 / RHEL-08-040290)")
_CAC_RELAY = Reference("ComplianceAsCode", "postfix_prevent_unrestricted_relay")
_CAC_BANNER = Reference("ComplianceAsCode", "postfix_server_banner")
_CIS_LOCAL = Reference("CIS", "Ensure mail transfer agent is configured for local-only mode")
_LYNIS_BANNER = Reference("Lynis", "MAIL-8818")
_LYNIS_VRFY = Reference("Lynis", "MAIL-8820")
_SMUGGLING = Reference("CVE", "CVE-2023-51764", "https://www.postfix.org/smtp-smuggling.html")
_BASIC = Reference("Postfix", "BASIC_CONFIGURATION_README", "https://www.postfix.org/BASIC_CONFIGURATION_README.html")
_TLS_README = Reference("Postfix", "TLS_README", "https://www.postfix.org/TLS_README.html")
_RFC8314 = Reference("RFC", "8314 (cleartext considered obsolete)")
_RFC8996 = Reference("RFC", "8996 (deprecating TLS 1.0 and 1.1)")
_RFC5321 = Reference("RFC", "5321")

CATALOG: tuple[Control, ...] = (
    Control(
        "HRD-RELAY-001", "open-relay", "Server relays mail for foreign domains from untrusted clients",
        Severity.CRITICAL, (_N, _C),
        "An open relay accepts mail from anyone to anyone. Spammers find one within hours; the host is "
        "blocklisted and its legitimate mail stops being delivered.",
        "Put reject_unauth_destination in smtpd_relay_restrictions after permit_mynetworks and "
        "permit_sasl_authenticated, keep mynetworks to the hosts that really submit mail, and list only "
        "the domains you accept in relay_domains.",
        (_CAC_RELAY, _ACCESS_README, Reference("Postfix", "postconf(5) smtpd_relay_restrictions"))),
    Control(
        "HRD-NET-001", "mynetworks-too-broad", "Trusted networks (mynetworks) wider than needed",
        Severity.HIGH, (_C, _N),
        "Every client in mynetworks may relay anywhere. A range wider than the hosts that submit mail "
        "(0.0.0.0/0, a public range, mynetworks_style = subnet or class on a host with a public "
        "address) turns those clients into relay users.",
        "Set mynetworks explicitly to the loopback networks and the exact internal hosts or subnets "
        "that submit mail, e.g. mynetworks = 127.0.0.0/8 [::1]/128 10.1.2.0/28.",
        (_CAC_RELAY, _BASIC, _STIG_CLIENT), ("mynetworks", "mynetworks_style")),
    Control(
        "HRD-NET-002", "mynetworks-malformed", "mynetworks entry that Postfix rejects or reads differently",
        Severity.MEDIUM, (_C,),
        "An entry Postfix cannot parse stops smtpd from starting; one it reads differently than "
        "written (an IPv6 form such as [::ffff:]/104, a host part in a CIDR, a stray comma) trusts "
        "other clients than the admin intended.",
        "Write each network as ADDRESS/LENGTH with the host bits zero, IPv6 in brackets "
        "([2001:db8::]/64), separated by spaces or single commas.",
        (_BASIC, Reference("Postfix", "postconf(5) mynetworks")), ("mynetworks",)),
    Control(
        "HRD-RELAY-002", "relay-restrictions", "Relay restrictions lack reject_unauth_destination",
        Severity.CRITICAL, (_C,),
        "Postfix refuses relaying only through reject_unauth_destination (or defer_unauth_destination) "
        "in smtpd_relay_restrictions or smtpd_recipient_restrictions. A permit before it, or its "
        "absence in both lists, makes the server an open relay.",
        "smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, "
        "reject_unauth_destination; set compatibility_level = 3.6 so the default applies.",
        (_CAC_RELAY, _ACCESS_README, _STIG_CLIENT),
        ("smtpd_relay_restrictions", "smtpd_recipient_restrictions", "compatibility_level")),
    Control(
        "HRD-NET-003", "inet-interfaces-exposed", "Send-only host listens beyond loopback",
        Severity.HIGH, (_C, _H),
        "A null client only submits mail to a relay. Listening on external interfaces exposes an SMTP "
        "server nobody needs and every smtpd bug to the network.",
        "Set inet_interfaces = loopback-only (and mydestination empty, local_transport = error) on "
        "send-only hosts.",
        (_CIS_LOCAL, Reference("Postfix", "STANDARD_CONFIGURATION_README null client")),
        ("inet_interfaces",)),
    Control(
        "HRD-BANNER-001", "banner-leak", "Software name, version or OS disclosed to clients",
        Severity.MEDIUM, (_N, _C),
        "A greeting such as '220 mx ESMTP Postfix (Debian/GNU)' tells an attacker which exploits to "
        "try. RFC 5321 requires only the host name after 220.",
        "smtpd_banner = $myhostname ESMTP (no $mail_name, $mail_version or OS name).",
        (_CAC_BANNER, _LYNIS_BANNER, Reference("DISA STIG", "RHEL-07-040600 (smtpd_banner)")),
        ("smtpd_banner",)),
    Control(
        "HRD-ENUM-001", "vrfy-enabled", "VRFY confirms addresses",
        Severity.MEDIUM, (_N, _C),
        "VRFY lets anyone check which mailboxes exist, harvesting addresses for spam and phishing.",
        "disable_vrfy_command = yes",
        (_LYNIS_VRFY, Reference("CIS", "Postfix VRFY disabled")), ("disable_vrfy_command",)),
    Control(
        "HRD-ENUM-002", "expn-enabled", "EXPN expands mailing lists or aliases",
        Severity.MEDIUM, (_N, _C),
        "EXPN reveals alias and list members. Postfix never implements it; a server that answers 250 "
        "to EXPN discloses its users.",
        "Disable EXPN in the MTA (Postfix has no EXPN; hardener's MTA answers 502 when "
        "disable_vrfy_command = yes).",
        (_LYNIS_VRFY, _RFC5321), ("disable_vrfy_command",)),
    Control(
        "HRD-ENUM-003", "user-enumeration", "RCPT replies differ for existing and unknown users",
        Severity.LOW, (_N,),
        "When RCPT TO answers differently for an existing and an unknown local user, an untrusted "
        "client can enumerate mailboxes even with VRFY off.",
        "Reject unknown recipients with the same code and text for every unknown address, or accept "
        "all and reject at a later stage; for a gateway, reject unknown relay recipients uniformly.",
        (_RFC5321,), ("smtpd_reject_unlisted_recipient", "local_recipient_maps")),
    Control(
        "HRD-TLS-001", "starttls-missing", "STARTTLS not offered",
        Severity.MEDIUM, (_N, _C),
        "Without STARTTLS every message and any credentials cross the network in clear text.",
        "smtpd_tls_security_level = may with smtpd_tls_chain_files (or smtpd_tls_cert_file and "
        "smtpd_tls_key_file) pointing at a valid certificate.",
        (_TLS_README, _RFC8314), ("smtpd_tls_security_level", "smtpd_tls_cert_file", "smtpd_tls_chain_files")),
    Control(
        "HRD-TLS-002", "tls-weak-protocol", "TLS 1.0, TLS 1.1 or SSL accepted",
        Severity.MEDIUM, (_N, _C),
        "SSLv3, TLS 1.0 and TLS 1.1 are deprecated (RFC 8996) and open to downgrade and padding "
        "attacks.",
        "smtpd_tls_protocols = >=TLSv1.2 and smtpd_tls_mandatory_protocols = >=TLSv1.2",
        (_TLS_README, _RFC8996), ("smtpd_tls_protocols", "smtpd_tls_mandatory_protocols")),
    Control(
        "HRD-TLS-003", "tls-cert-invalid", "TLS certificate expired, self-signed, untrusted or wrong name",
        Severity.MEDIUM, (_N, _C),
        "Peers that verify certificates (DANE, MTA-STS, relays at encrypt/verify level) refuse or "
        "downgrade a server whose certificate does not validate.",
        "Install a certificate from a trusted CA whose name matches myhostname, with its chain, and "
        "renew it before it expires; use an RSA key of at least 2048 bits or ECDSA P-256.",
        (_TLS_README, Reference("RFC", "7672 (DANE for SMTP)")), ("smtpd_tls_cert_file", "smtpd_tls_chain_files")),
    Control(
        "HRD-AUTH-001", "auth-plaintext", "AUTH offered before STARTTLS",
        Severity.HIGH, (_N, _C),
        "AUTH over an unencrypted session sends passwords in clear text (PLAIN and LOGIN are only "
        "base64).",
        "smtpd_tls_auth_only = yes",
        (_TLS_README, _RFC8314), ("smtpd_tls_auth_only",)),
    Control(
        "HRD-SMUG-001", "smtp-smuggling", "Non-standard end-of-data accepted (SMTP smuggling)",
        Severity.HIGH, (_N, _C),
        "A server that ends DATA at <LF>.<LF> or similar lets an attacker smuggle a second, spoofed "
        "message through an outbound relay that does not (CVE-2023-51764).",
        "smtpd_forbid_bare_newline = yes (Postfix >= 3.5.23/3.6.13/3.7.9/3.8.4), or "
        "smtpd_data_restrictions = reject_unauth_pipelining on older versions.",
        (_SMUGGLING, Reference("SEC Consult", "SMTP Smuggling (2023)")),
        ("smtpd_forbid_bare_newline", "smtpd_data_restrictions")),
    Control(
        "HRD-PROTO-001", "helo-not-required", "Clients may skip HELO/EHLO",
        Severity.LOW, (_N, _C),
        "Requiring HELO stops a share of spam bots and makes HELO-based restrictions effective.",
        "smtpd_helo_required = yes",
        (Reference("Postfix", "postconf(5) smtpd_helo_required"), _RFC5321), ("smtpd_helo_required",)),
    Control(
        "HRD-PROTO-002", "pipelining-unauth", "Unauthorized pipelining accepted",
        Severity.LOW, (_N, _C),
        "Clients that send commands ahead of replies without PIPELINING are mostly spamware; "
        "rejecting them also limits SMTP smuggling through pipelined DATA.",
        "smtpd_data_restrictions = reject_unauth_pipelining",
        (Reference("Postfix", "postconf(5) reject_unauth_pipelining"),), ("smtpd_data_restrictions",)),
    Control(
        "HRD-PROTO-003", "size-unlimited", "No message size limit",
        Severity.LOW, (_N, _C),
        "Without a size limit one client can fill the queue file system and stop all mail.",
        "message_size_limit = 10240000 (or what your users need), never 0.",
        (Reference("Postfix", "postconf(5) message_size_limit"),), ("message_size_limit",)),
    Control(
        "HRD-PRIV-001", "chroot-disabled", "Network-facing daemon not chrooted",
        Severity.MEDIUM, (_C, _H),
        "A chroot jail limits what a compromised smtpd can read or change to the queue directory.",
        "Set the chroot column (5th) of smtpd, smtp, cleanup, qmgr, bounce and the other network-facing "
        "services in master.cf to y.",
        (Reference("Postfix", "BASIC_CONFIGURATION_README chroot"),)),
    Control(
        "HRD-PRIV-002", "runs-as-root", "Network-facing process keeps uid 0",
        Severity.HIGH, (_H,),
        "A daemon that parses untrusted network input as root turns any bug into a root compromise.",
        "Run network-facing processes as the unprivileged mail_owner after binding (master.cf "
        "unprivileged column '-' or 'y').",
        (Reference("Postfix", "postconf(5) mail_owner"),), ("mail_owner",)),
    Control(
        "HRD-PRIV-003", "queue-permissions", "Queue or config files writable by others",
        Severity.HIGH, (_H,),
        "Writable queue or configuration files let a local user inject, read or alter mail, or "
        "change the configuration the daemon runs.",
        "Queue directories owned by mail_owner, mode 0700 (maildrop 0730 group postdrop); "
        "configuration owned by root, not group- or world-writable.",
        (Reference("Postfix", "postfix-files"),), ("mail_owner", "queue_directory")),
    Control(
        "HRD-ALIAS-001", "root-alias-missing", "Mail to root not redirected to a person",
        Severity.LOW, (_C, _H),
        "Mail to root (cron, security tools, bounces) goes unread unless an alias sends it to a "
        "person who reads it.",
        "In the aliases file: root: admin@example.com and postmaster: root; run newaliases.",
        (_BASIC,), ("alias_maps", "alias_database")),
    Control(
        "HRD-NOTE-001", "surprising-setting", "Setting whose effect surprises admins",
        Severity.INFO, (_C,),
        "Some settings change what a host does in ways that are easy to miss; hardener explains them "
        "so the choice is deliberate.",
        "Keep the setting if it is intended; the evidence says what it does.",
        (_BASIC,)),
)

_BY_ID = {c.id: c for c in CATALOG}
_BY_SLUG = {c.slug: c for c in CATALOG}


def by_id(control_id: str) -> Control:
    """The control with this id (KeyError if none)."""
    return _BY_ID[control_id]


def by_slug(slug: str) -> Control:
    """The control checked by this slug (KeyError if none)."""
    return _BY_SLUG[slug]


def get(key: str) -> Control:
    """A control by id or slug, case-insensitive for ids; KeyError naming the key if none."""
    if key.upper() in _BY_ID:
        return _BY_ID[key.upper()]
    if key in _BY_SLUG:
        return _BY_SLUG[key]
    raise KeyError(key)
