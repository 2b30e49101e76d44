"""Postfix 3.7 defaults (as `postconf -d`), including the machine-dependent ones.

The static defaults are in defaults_37.py, generated from the real `postconf -d` (a test keeps it
current). Several of them are expressions on `compatibility_level`, exactly as Postfix writes them
(`relay_domains = ${{$compatibility_level} <level {2} ? {$mydestination} : {}}`), so a main.cf
without `compatibility_level` is at level 0 and gets the old defaults, as with Postfix.
Postfix computes four defaults from the machine: myhostname, mydomain, mynetworks, process_id.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from typing import Protocol

from hardener.postfix.defaults_37 import POSTCONF_D
from hardener.postfix.interfaces import own_interfaces

DEF_MYDOMAIN = "localdomain"
MACHINE_DEPENDENT = ("myhostname", "mydomain", "mynetworks", "process_id", "process_name")
# Parameters Postfix never $-expands at load time (the "raw" table): the daemon expands them later,
# per message, with its own attributes ($user, $home, $rbl_code, ...). Found with postconf -x.
RAW_PARAMETERS = frozenset({
    "command_execution_directory", "default_rbl_reply", "forward_path", "luser_relay",
    "mailbox_command", "postscreen_expansion_filter", "postscreen_reject_footer",
    "smtpd_expansion_filter", "smtpd_reject_footer",
})
TIME_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

# The parameters the project reads (lint, render tests, the MTA daemon, audit). The parser knows
# every Postfix parameter; this list is what the postconf comparison test checks one by one.
PROJECT_PARAMETERS: tuple[str, ...] = (
    "compatibility_level", "myhostname", "mydomain", "myorigin", "mydestination",
    "inet_interfaces", "inet_protocols", "mynetworks", "mynetworks_style", "relay_domains",
    "relayhost", "relay_transport", "default_transport", "local_transport", "transport_maps",
    "smtpd_banner", "mail_name", "mail_version", "disable_vrfy_command", "smtpd_helo_required",
    "smtpd_relay_restrictions", "smtpd_recipient_restrictions", "smtpd_client_restrictions",
    "smtpd_helo_restrictions", "smtpd_sender_restrictions", "smtpd_data_restrictions",
    "smtpd_end_of_data_restrictions", "smtpd_etrn_restrictions", "smtpd_restriction_classes",
    "smtpd_forbid_bare_newline", "smtpd_forbid_bare_newline_exclusions",
    "smtpd_forbid_unauth_pipelining", "smtpd_delay_reject", "smtpd_reject_unlisted_recipient",
    "smtpd_reject_unlisted_sender", "strict_rfc821_envelopes", "smtpd_discard_ehlo_keywords",
    "smtpd_tls_security_level", "smtpd_use_tls", "smtpd_enforce_tls", "smtpd_tls_cert_file",
    "smtpd_tls_key_file", "smtpd_tls_chain_files", "smtpd_tls_CAfile", "smtpd_tls_protocols",
    "smtpd_tls_mandatory_protocols", "smtpd_tls_ciphers", "smtpd_tls_mandatory_ciphers",
    "smtpd_tls_exclude_ciphers", "smtpd_tls_auth_only", "smtpd_tls_loglevel",
    "smtpd_tls_received_header", "smtpd_tls_session_cache_database",
    "smtp_tls_security_level", "smtp_use_tls", "smtp_enforce_tls", "smtp_tls_cert_file",
    "smtp_tls_key_file", "smtp_tls_chain_files", "smtp_tls_CAfile", "smtp_tls_CApath",
    "smtp_tls_protocols", "smtp_tls_mandatory_protocols", "smtp_tls_ciphers",
    "smtp_tls_mandatory_ciphers", "smtp_tls_loglevel", "smtp_tls_policy_maps",
    "smtp_tls_session_cache_database", "smtp_tls_note_starttls_offer",
    "tls_high_cipherlist", "tls_medium_cipherlist", "tls_preempt_cipherlist",
    "smtpd_sasl_auth_enable", "smtpd_sasl_type", "smtpd_sasl_path",
    "smtpd_sasl_security_options", "smtpd_sasl_tls_security_options",
    "smtp_sasl_auth_enable", "smtp_sasl_password_maps", "smtp_sasl_security_options",
    "message_size_limit", "mailbox_size_limit", "smtpd_recipient_limit", "line_length_limit",
    "header_size_limit", "smtpd_history_flush_threshold",
    "queue_directory", "data_directory", "command_directory", "daemon_directory",
    "config_directory", "mail_owner", "setgid_group", "default_privs",
    "alias_maps", "alias_database", "local_recipient_maps", "relay_recipient_maps",
    "virtual_alias_maps", "virtual_alias_domains", "virtual_mailbox_domains",
    "virtual_mailbox_maps", "canonical_maps", "sender_canonical_maps",
    "recipient_canonical_maps", "mailbox_command", "mailbox_transport", "home_mailbox",
    "mail_spool_directory", "luser_relay", "recipient_delimiter", "append_dot_mydomain",
    "append_at_myorigin", "masquerade_domains", "smtputf8_enable", "biff",
    "qmgr_message_active_limit", "qmgr_message_recipient_limit", "minimal_backoff_time",
    "maximal_backoff_time", "queue_run_delay", "maximal_queue_lifetime",
    "bounce_queue_lifetime", "delay_warning_time", "hash_queue_depth", "hash_queue_names",
    "smtpd_client_connection_count_limit", "smtpd_client_connection_rate_limit",
    "smtpd_client_message_rate_limit", "smtpd_client_recipient_rate_limit",
    "smtpd_client_event_limit_exceptions", "anvil_rate_time_unit", "smtpd_timeout",
    "smtpd_error_sleep_time", "smtpd_soft_error_limit", "smtpd_hard_error_limit",
    "smtpd_junk_command_limit", "smtpd_proxy_timeout", "default_process_limit",
    "smtp_connect_timeout", "smtp_helo_timeout", "smtp_data_done_timeout",
    "smtp_helo_name", "smtp_bind_address", "smtp_bind_address6",
    "default_destination_concurrency_limit", "smtp_destination_concurrency_limit",
    "default_destination_recipient_limit", "initial_destination_concurrency",
    "maillog_file", "maillog_file_prefixes", "syslog_name", "syslog_facility",
    "allow_percent_hack", "swap_bangpath", "resolve_dequoted_address",
    "resolve_null_domain", "allow_untrusted_routing", "allow_mail_to_commands",
    "allow_mail_to_files", "notify_classes", "bounce_notice_recipient",
    "2bounce_notice_recipient", "error_notice_recipient", "delay_notice_recipient",
    "soft_bounce", "double_bounce_sender", "empty_address_recipient",
    "show_user_unknown_table_name", "smtpd_reject_footer", "smtpd_client_port_logging",
    "smtpd_peername_lookup", "smtpd_authorized_xclient_hosts", "smtpd_authorized_xforward_hosts",
    "smtpd_proxy_filter", "content_filter", "header_checks", "body_checks",
    "milter_default_action", "smtpd_milters", "non_smtpd_milters",
    "disable_dns_lookups", "smtp_dns_support_level", "smtp_host_lookup",
    "smtpd_sender_login_maps", "unknown_local_recipient_reject_code",
    "unknown_relay_recipient_reject_code", "unverified_recipient_reject_code",
    "relay_domains_reject_code", "access_map_reject_code", "default_database_type",
    "alternate_config_directories", "multi_instance_enable", "inet_protocols",
    "postscreen_access_list", "smtp_tls_fingerprint_digest", "smtpd_tls_fingerprint_digest",
    "smtpd_relay_before_recipient_restrictions", "respectful_logging",
)


class _Config(Protocol):
    def get(self, name: str) -> str: ...

    def is_set(self, name: str) -> bool: ...


def is_known(name: str) -> bool:
    """True for a parameter Postfix 3.7 knows (has a built-in default)."""
    return name in POSTCONF_D or name in MACHINE_DEPENDENT


def builtin_default(name: str) -> str | None:
    """The static default as `postconf -d` prints it (unexpanded), or None for machine/unknown names."""
    return POSTCONF_D.get(name)


def default_time_unit(name: str) -> str:
    """The unit a bare number means for time parameter `name`: the unit of its default ('s' if none)."""
    default = POSTCONF_D.get(name, "")
    return default[-1] if default and default[-1] in TIME_UNITS else "s"


def machine_default(name: str, cf: _Config) -> str | None:
    """Defaults Postfix computes from this machine (and from other parameters of `cf`)."""
    if name == "myhostname":
        host = socket.gethostname()
        if "." not in host:
            domain = cf.get("mydomain") if cf.is_set("mydomain") else DEF_MYDOMAIN
            host = f"{host}.{domain}"
        return host
    if name == "mydomain":
        host = cf.get("myhostname")
        return host.split(".", 1)[1] if "." in host else DEF_MYDOMAIN
    if name == "mynetworks":
        return mynetworks_from_style(cf.get("mynetworks_style"), cf.get("inet_protocols"),
                                     cf.get("inet_interfaces"))
    if name == "process_id":
        return str(os.getpid())
    if name == "process_name":
        return "postconf"
    return None


def protocol_families(inet_protocols: str) -> tuple[int, ...]:
    """Address families enabled by inet_protocols ("all", "ipv4", "ipv6", "ipv4, ipv6", or empty).

    ValueError for any other word (Postfix: fatal "unknown inet_protocols value"; case matters).
    """
    families: list[int] = []
    words = inet_protocols.replace(",", " ").split()
    for word in words:
        if word not in ("all", "ipv4", "ipv6"):
            raise ValueError(f'unknown inet_protocols value "{word}" in "{inet_protocols}"')
    if "all" in words or "ipv4" in words:
        families.append(socket.AF_INET)
    if "all" in words or "ipv6" in words:
        families.append(socket.AF_INET6)
    return tuple(families)


def mynetworks_from_style(style: str, inet_protocols: str = "all", inet_interfaces: str = "all") -> str:
    """The mynetworks value Postfix derives from mynetworks_style (host, subnet or class).

    Postfix uses the addresses it listens on (inet_interfaces) with their interface netmasks,
    and drops repeated networks keeping the first (mynetworks.c); ValueError for a bad style.
    """
    style = style.strip().lower()
    entries: list[str] = []
    interfaces = own_interfaces(inet_interfaces.replace(",", " ").split(),
                                protocol_families(inet_protocols))
    for iface in interfaces:
        if style == "host":
            net, prefix = str(iface.ip), iface.max_prefixlen
        elif style == "class" and iface.version == 4:
            # classful network of the address: A /8, B /16, C /24, D /4 (mynetworks.c)
            first = int(iface.ip) >> 24
            prefix = 8 if first < 128 else 16 if first < 192 else 24 if first < 224 else 4
            mask = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF
            net = str(ipaddress.IPv4Address(int(iface.ip) & mask))
        elif style in ("subnet", "class"):
            net, prefix = str(iface.network.network_address), iface.network.prefixlen
        else:
            raise ValueError(f"unknown mynetworks_style value: {style}")
        entry = f"[{net}]/{prefix}" if iface.version == 6 else f"{net}/{prefix}"
        if entry not in entries:
            entries.append(entry)
    return " ".join(entries)
