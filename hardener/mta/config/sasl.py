"""smtpd's SASL AUTH and mandatory-TLS settings, read from main.cf (or a service's -o overrides).

Postfix's parameters, with Postfix's meaning:
- smtpd_sasl_auth_enable; smtpd_tls_auth_only (AUTH offered and accepted only inside TLS);
- smtpd_sasl_security_options before TLS, smtpd_sasl_tls_security_options inside it: PLAIN and
  LOGIN send the password itself, so noplaintext (and noactive, nodictionary, mutual_auth,
  forward_secrecy, which they do not provide either) leaves neither; noanonymous is always true
  here (ANONYMOUS is never offered);
- smtpd_sasl_mechanism_filter (names, !names, static:rest / static:all; first match wins);
- smtpd_sasl_exceptions_networks (no AUTH offered to them), broken_sasl_auth_clients (also
  `AUTH=...`), smtpd_sasl_local_domain (appended to a name without '@'),
  smtpd_sasl_response_limit, smtpd_client_auth_rate_limit;
- smtpd_tls_security_level (none, may, encrypt) with Postfix's fallbacks smtpd_enforce_tls and
  smtpd_use_tls when the level is empty.
smtpd_sasl_type, smtpd_sasl_path and smtpd_sasl_service choose Postfix's backend (Cyrus or
Dovecot); hardener's smtpd checks passwords itself, against hardener_sasl_passwd_file (default
$config_directory/sasl_passwd, written by `hardener mta passwd`).

SECURITY: reads root-owned configuration; no I/O beyond the parser.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from hardener.mta.config.params import conf_int, param_error
from hardener.postfix.maincf import MainCf

MECHANISMS = ("PLAIN", "LOGIN")          # what hardener's smtpd implements, in EHLO order
SECURITY_OPTIONS = {"noanonymous", "noplaintext", "noactive", "nodictionary", "mutual_auth",
                    "forward_secrecy"}
# options PLAIN and LOGIN cannot satisfy (Cyrus SASL's plugin flags for both)
_EXCLUDE_PLAINTEXT = SECURITY_OPTIONS - {"noanonymous"}
PASSWD_FILE_PARAMETER = "hardener_sasl_passwd_file"
MAX_RESPONSE_LIMIT = 1 << 20


@dataclass(frozen=True)
class SaslSettings:
    """What smtpd needs to offer and run AUTH."""

    enabled: bool                        # smtpd_sasl_auth_enable
    tls_only: bool                       # smtpd_tls_auth_only
    mechanisms: tuple[str, ...]          # offered before TLS
    tls_mechanisms: tuple[str, ...]      # offered inside TLS
    exceptions: tuple                    # smtpd_sasl_exceptions_networks
    broken_clients: bool                 # broken_sasl_auth_clients
    local_domain: str                    # smtpd_sasl_local_domain
    response_limit: int                  # smtpd_sasl_response_limit (bytes)
    passwd_file: Path                    # hardener_sasl_passwd_file

    def offered(self, tls: bool) -> tuple[str, ...]:
        """The mechanisms AUTH offers now (empty: no AUTH at all)."""
        if not self.enabled or (self.tls_only and not tls):
            return ()
        return self.tls_mechanisms if tls else self.mechanisms


def _allowed(main: MainCf, name: str) -> tuple[str, ...]:
    options = {o.lower() for o in main.get_list(name)}
    unknown = sorted(options - SECURITY_OPTIONS)
    if unknown:
        raise param_error(main, name, f"unknown SASL security option {unknown[0]!r}")
    if options & _EXCLUDE_PLAINTEXT:
        return ()
    return MECHANISMS


def _filter(main: MainCf, mechanisms: tuple[str, ...]) -> tuple[str, ...]:
    """smtpd_sasl_mechanism_filter as Postfix's string list: first match wins, no match drops."""
    name = "smtpd_sasl_mechanism_filter"
    rules: list[tuple[str, bool]] = []
    for item in main.get_list(name):
        negated = item.startswith("!")
        word = item[1:] if negated else item
        low = word.lower()
        if ":" in word and low not in ("static:rest", "static:all"):
            raise param_error(main, name, f"table {word!r} is not supported here (use names, "
                              "!names and static:rest)")
        rules.append((low, not negated))
    if not rules:
        return mechanisms
    kept = []
    for mech in mechanisms:
        for pattern, allow in rules:
            if pattern in ("static:rest", "static:all") or pattern == mech.lower():
                if allow:
                    kept.append(mech)
                break
    return tuple(kept)


def _networks(main: MainCf, name: str) -> tuple:
    nets = []
    for item in main.get_list(name):
        text = item.replace("[", "").replace("]", "")
        try:
            nets.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise param_error(main, name, f"malformed network {item!r} (only addresses and "
                              "networks here)") from None
    return tuple(nets)


def passwd_file(main: MainCf) -> Path:
    """hardener_sasl_passwd_file: an absolute path (default $config_directory/sasl_passwd)."""
    if main.is_set(PASSWD_FILE_PARAMETER):
        value = main.get(PASSWD_FILE_PARAMETER)
    else:
        value = str(Path(main.get("config_directory") or "/etc/postfix") / "sasl_passwd")
    if not value.startswith("/"):
        raise param_error(main, PASSWD_FILE_PARAMETER, f"must be an absolute path, not {value!r}")
    return Path(value)


def sasl_settings(main: MainCf) -> SaslSettings:
    """The SASL settings of this main.cf view (ConfigError naming file, line and parameter)."""
    if main.get_bool("smtpd_sasl_authenticated_header"):
        raise param_error(main, "smtpd_sasl_authenticated_header",
                          "yes is not supported (hardener's Received: header never names the user)")
    limit = conf_int(main, "smtpd_sasl_response_limit", 1, MAX_RESPONSE_LIMIT)
    return SaslSettings(
        enabled=main.get_bool("smtpd_sasl_auth_enable"),
        tls_only=main.get_bool("smtpd_tls_auth_only"),
        mechanisms=_filter(main, _allowed(main, "smtpd_sasl_security_options")),
        tls_mechanisms=_filter(main, _allowed(main, "smtpd_sasl_tls_security_options")),
        exceptions=_networks(main, "smtpd_sasl_exceptions_networks"),
        broken_clients=main.get_bool("broken_sasl_auth_clients"),
        local_domain=main.get("smtpd_sasl_local_domain"),
        response_limit=limit,
        passwd_file=passwd_file(main),
    )


def tls_level(main: MainCf) -> str:
    """smtpd_tls_security_level ('none', 'may' or 'encrypt'), else Postfix's fallbacks:
    smtpd_enforce_tls = yes is encrypt, smtpd_use_tls = yes is may."""
    level = main.get("smtpd_tls_security_level").strip().lower()
    if level:
        if level not in ("none", "may", "encrypt"):
            raise param_error(main, "smtpd_tls_security_level", f"unknown value {level!r}")
        return level
    if main.get_bool("smtpd_enforce_tls"):
        return "encrypt"
    if main.get_bool("smtpd_use_tls"):
        return "may"
    return "none"
