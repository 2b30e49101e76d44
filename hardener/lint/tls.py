"""TLS checks of the SMTP server side: starttls-missing, tls-weak-protocol, auth-plaintext.

Postfix offers STARTTLS when smtpd_tls_security_level is may or encrypt (or, with that parameter
empty, the legacy smtpd_use_tls / smtpd_enforce_tls) *and* a certificate is configured; without a
certificate it logs a warning and offers nothing. At level encrypt it uses
smtpd_tls_mandatory_protocols, otherwise smtpd_tls_protocols (smtpd.c), so only the list in force
is judged, read by hardener.postfix.tls_protocols (every form Postfix accepts: >=/<= bounds, names,
! exclusions, hex versions). A list Postfix refuses, or one that leaves no protocol version, makes
STARTTLS useless: that is starttls-missing, as the audit sees it. The certificate itself is checked
in hardener.lint.certs.
"""

from __future__ import annotations

from hardener.lint.base import LintContext, finding
from hardener.postfix.tls_protocols import (
    LIBRARY_PROTOCOLS,
    InvalidProtocolList,
    server_protocols,
    weak,
)
from hardener.report.model import Finding

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


def starttls_discarded(ctx: LintContext) -> bool:
    """True when smtpd_discard_ehlo_keywords hides STARTTLS (smtpd then also refuses it with 502)."""
    return "starttls" in {w.lower() for w in ctx.words("smtpd_discard_ehlo_keywords")}


def tls_offered(ctx: LintContext) -> bool:
    """True when smtpd offers STARTTLS: a level above none, a certificate configured, not discarded."""
    return (security_level(ctx)[0] != "none" and bool(certificate_parameters(ctx))
            and not starttls_discarded(ctx))


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
    if starttls_discarded(ctx):
        return [finding(ctx, "starttls-missing", "smtpd_discard_ehlo_keywords",
                        f"{ctx.describe('smtpd_discard_ehlo_keywords')} hides STARTTLS from EHLO "
                        f"(and smtpd answers the command with 502): no client can start TLS")]
    return _unusable_tls(ctx, level)


def protocol_parameter(ctx: LintContext) -> str:
    """The protocol list smtpd uses: the mandatory one at level encrypt, else smtpd_tls_protocols."""
    level, _ = security_level(ctx)
    return "smtpd_tls_mandatory_protocols" if level == "encrypt" else "smtpd_tls_protocols"


def accepted_protocols(ctx: LintContext) -> tuple[str, ...]:
    """The TLS versions smtpd accepts after STARTTLS (hardener.postfix.tls_protocols.server_protocols
    of the list in force); InvalidProtocolList when Postfix refuses that list."""
    return server_protocols(ctx.value(protocol_parameter(ctx)))


def _unusable_tls(ctx: LintContext, level: str) -> list[Finding]:
    """starttls-missing for a protocol list in force that leaves STARTTLS without a working TLS."""
    name = protocol_parameter(ctx)
    try:
        accepted = accepted_protocols(ctx)
    except InvalidProtocolList as exc:
        return [finding(ctx, "starttls-missing", name,
                        f"{ctx.describe(name)} is in force at level {level} and is not a valid "
                        f"protocol list ({exc}): Postfix logs 'Invalid TLS protocol list' and "
                        f"disables TLS, STARTTLS is answered 454")]
    if not accepted:
        return [finding(ctx, "starttls-missing", name,
                        f"{ctx.describe(name)} is in force at level {level} and leaves no protocol "
                        f"version the TLS library can do ({', '.join(LIBRARY_PROTOCOLS)}): every "
                        f"TLS handshake after STARTTLS fails")]
    return []


def check_weak_protocols(ctx: LintContext) -> list[Finding]:
    """tls-weak-protocol: the protocol list in force accepts SSL, TLSv1 or TLSv1.1."""
    if not tls_offered(ctx):
        return []
    level, _ = security_level(ctx)
    name = protocol_parameter(ctx)
    try:
        found = weak(accepted_protocols(ctx))
    except InvalidProtocolList:
        return []   # no TLS at all: starttls-missing says so
    if not found:
        return []
    return [finding(ctx, "tls-weak-protocol", name,
                    f"{ctx.describe(name)} is in force at level {level} and accepts "
                    f"{', '.join(found)}")]


def check_auth_plaintext(ctx: LintContext) -> list[Finding]:
    """auth-plaintext: SASL AUTH on, smtpd_tls_auth_only no, and TLS optional."""
    if not ctx.flag("smtpd_sasl_auth_enable") or ctx.flag("smtpd_tls_auth_only"):
        return []
    level, _ = security_level(ctx)
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
