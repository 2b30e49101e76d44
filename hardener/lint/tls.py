"""TLS checks of the SMTP server side: starttls-missing, tls-weak-protocol, auth-plaintext.

Postfix offers STARTTLS when smtpd_tls_security_level is may or encrypt (or, with that parameter
empty, the legacy smtpd_use_tls / smtpd_enforce_tls) *and* a certificate is configured; without a
certificate it logs a warning and offers nothing. At level encrypt it uses
smtpd_tls_mandatory_protocols, otherwise smtpd_tls_protocols (smtpd.c), so only the list in force
is judged. The certificate itself is checked in hardener.lint.certs.
"""

from __future__ import annotations

import re

from hardener.lint.base import LintContext, finding
from hardener.report.model import Finding

PROTOCOLS = ("SSLv2", "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
WEAK = ("SSLv3", "TLSv1", "TLSv1.1")
CERT_PARAMETERS = ("smtpd_tls_chain_files", "smtpd_tls_cert_file", "smtpd_tls_eccert_file",
                   "smtpd_tls_dcert_file")


def security_level(ctx: LintContext) -> tuple[str, str]:
    """(level, parameter that set it): none, may or encrypt."""
    level = ctx.value("smtpd_tls_security_level").strip().lower()
    if level:
        return ("encrypt" if level == "encrypt" else "may" if level == "may" else "none",
                "smtpd_tls_security_level")
    if ctx.flag("smtpd_enforce_tls"):
        return "encrypt", "smtpd_enforce_tls"
    if ctx.flag("smtpd_use_tls"):
        return "may", "smtpd_use_tls"
    return "none", "smtpd_tls_security_level"


def certificate_parameters(ctx: LintContext) -> list[str]:
    """The certificate parameters that name a file (chain files first, as Postfix prefers them)."""
    if ctx.words("smtpd_tls_chain_files"):
        return ["smtpd_tls_chain_files"]
    return [name for name in CERT_PARAMETERS[1:] if ctx.value(name).strip()]


def tls_offered(ctx: LintContext) -> bool:
    """True when smtpd offers STARTTLS: a level above none and a certificate configured."""
    return security_level(ctx)[0] != "none" and bool(certificate_parameters(ctx))


def check_starttls(ctx: LintContext) -> list[Finding]:
    """starttls-missing: TLS off, or on without a certificate."""
    level, name = security_level(ctx)
    if level == "none":
        legacy = "" if name != "smtpd_tls_security_level" or ctx.is_set(name) else (
            f" and {ctx.describe('smtpd_use_tls')}")
        return [finding(ctx, "starttls-missing", name,
                        f"{ctx.describe(name)}{legacy}: smtpd never offers STARTTLS, mail and "
                        f"credentials cross the network in clear text")]
    if not certificate_parameters(ctx):
        return [finding(ctx, "starttls-missing", name,
                        f"{ctx.describe(name)} but no certificate is configured (smtpd_tls_chain_files "
                        f"and smtpd_tls_cert_file are empty): Postfix logs 'No server certs available. "
                        f"TLS won't be enabled' and offers no STARTTLS")]
    return []


def enabled_protocols(spec: str) -> tuple[list[str], list[str]]:
    """(protocols a Postfix protocol list enables, names it does not know) for e.g. '>=TLSv1.2'."""
    include: set[str] = set()
    exclude: set[str] = set()
    low, high = 0, len(PROTOCOLS) - 1
    unknown = []
    index = {p.lower(): i for i, p in enumerate(PROTOCOLS)}
    for item in re.split(r"[\s,:]+", spec.strip()):
        if not item:
            continue
        match = re.match(r"^(!|>=|<=)?(.+)$", item)
        op, name = match.groups() if match else ("", item)
        if name.lower() not in index:
            unknown.append(item)
            continue
        position = index[name.lower()]
        if op == "!":
            exclude.add(PROTOCOLS[position])
        elif op == ">=":
            low = max(low, position)
        elif op == "<=":
            high = min(high, position)
        else:
            include.add(PROTOCOLS[position])
    base = include or set(PROTOCOLS) - {"SSLv2", "SSLv3"}  # OpenSSL 3 builds have neither
    enabled = [p for p in PROTOCOLS if p in base and low <= PROTOCOLS.index(p) <= high
               and p not in exclude and p != "SSLv2"]
    return enabled, unknown


def check_weak_protocols(ctx: LintContext) -> list[Finding]:
    """tls-weak-protocol: the protocol list in force accepts SSLv3, TLSv1 or TLSv1.1."""
    if not tls_offered(ctx):
        return []
    level, _ = security_level(ctx)
    name = "smtpd_tls_mandatory_protocols" if level == "encrypt" else "smtpd_tls_protocols"
    enabled, unknown = enabled_protocols(ctx.value(name))
    weak = [p for p in enabled if p in WEAK]
    if not weak:
        return []
    note = f" (unknown names ignored: {', '.join(unknown)})" if unknown else ""
    return [finding(ctx, "tls-weak-protocol", name,
                    f"{ctx.describe(name)} is in force at level {level} and accepts "
                    f"{', '.join(weak)}{note}")]


def check_auth_plaintext(ctx: LintContext) -> list[Finding]:
    """auth-plaintext: SASL AUTH on, smtpd_tls_auth_only no, and TLS optional."""
    if not ctx.flag("smtpd_sasl_auth_enable") or ctx.flag("smtpd_tls_auth_only"):
        return []
    level, level_name = security_level(ctx)
    if level == "encrypt":
        return []  # the client must STARTTLS before any AUTH
    return [finding(ctx, "auth-plaintext", "smtpd_tls_auth_only",
                    f"{ctx.describe('smtpd_sasl_auth_enable')} and {ctx.describe('smtpd_tls_auth_only')}"
                    f" with TLS {level if level != 'none' else 'off'}: AUTH is offered on the "
                    f"unencrypted session, passwords travel in clear text")]


CHECKS = {
    "starttls-missing": check_starttls,
    "tls-weak-protocol": check_weak_protocols,
    "auth-plaintext": check_auth_plaintext,
}
