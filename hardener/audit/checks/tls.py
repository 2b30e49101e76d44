"""TLS checks: starttls-missing, tls-weak-protocol, tls-cert-invalid and auth-plaintext.

What the server advertises in its clear-text EHLO decides starttls-missing and auth-plaintext. The
protocol and certificate checks each open new connections (EHLO, STARTTLS, handshake) through the
context, one at a time, with the audit's --timeout:

- tls-weak-protocol offers each version (SSLv3, TLSv1 ... TLSv1.3) one at a time with a client pinned
  to it (hardener.audit.tls_probe.protocol_context): the versions that complete a handshake are the
  set the server accepts, named and judged as lint names and judges the set it computes from main.cf
  (hardener.postfix.tls_protocols); SSL, TLSv1 or TLSv1.1 among them is the finding. A protocol the
  local OpenSSL cannot offer is reported as not tested, never as refused. When no version completes
  a handshake, a server that refuses them all cannot be told from one that breaks after 220 (both
  end in an alert or a reset, racing each other): both handshake checks are errors, not verdicts.
- tls-cert-invalid verifies the chain with OpenSSL (system store plus --ca-file) and reads the leaf
  certificate: dates, self-signed, key size, and whether it names the host (the target's host
  name, or the name the server gives in its EHLO reply when the target is an IP address).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtensionOID, NameOID, PublicKeyAlgorithmOID

from hardener.audit.context import AuditContext
from hardener.audit.probe import ProbeError, Reply
from hardener.audit.tls_probe import (
    PROBED_PROTOCOLS,
    StartTlsAttempt,
    StartTlsRefused,
    can_offer,
    protocol_context,
    try_starttls,
    verifying_context,
)
from hardener.lint.certs import MIN_EC_BITS, MIN_RSA_BITS  # one verdict per control
from hardener.postfix.tls_protocols import weak
from hardener.report.model import Finding

SLUGS = ("starttls-missing", "auth-plaintext", "tls-weak-protocol", "tls-cert-invalid")

# OpenSSL verify codes (x509_vfy.h) -> (problem kind, text) as used in evidence.
_VERIFY_PROBLEMS = {
    9: ("not-yet-valid", "not yet valid"),
    10: ("expired", "expired"),
    18: ("self-signed", "self-signed"),
    19: ("untrusted", "untrusted chain (self-signed root not trusted)"),
    20: ("untrusted", "untrusted chain (issuer not trusted)"),
    21: ("untrusted", "untrusted chain (cannot verify the first certificate)"),
    2: ("untrusted", "untrusted chain (issuer certificate missing)"),
}


async def run(ctx: AuditContext) -> None:
    """Run the four TLS checks on ctx.target, adding findings and recording each slug's status."""
    try:
        caps = await ctx.capabilities()
    except ProbeError as exc:
        for slug in SLUGS:
            ctx.error(slug, f"no EHLO capabilities: {exc}")
        return
    _check_auth_plaintext(ctx, caps)
    if "STARTTLS" not in caps:
        ctx.add(Finding.of("starttls-missing", evidence=_ehlo_evidence(ctx.ehlo_reply, "no STARTTLS")))
        ctx.failed("starttls-missing")
        _mark_handshake_checks(ctx.skipped, "the server does not offer STARTTLS")
        return
    ca_file = str(ctx.options.ca_file) if ctx.options.ca_file else None
    try:
        verifying = verifying_context(ca_file)
    except (ssl.SSLError, OSError) as exc:
        ctx.passed("starttls-missing", "STARTTLS advertised")
        reason = getattr(exc, "reason", None) or exc
        _mark_handshake_checks(ctx.error, f"cannot use --ca-file {ca_file}: {reason}")
        return
    try:
        certificate_attempt = await _attempt(ctx, verifying)
    except StartTlsRefused as exc:
        # Postfix answers 454 when its certificate cannot be loaded or its protocol list is
        # invalid: STARTTLS is not usable.
        ctx.add(Finding.of("starttls-missing", evidence=f"EHLO advertises STARTTLS but {exc}"))
        ctx.failed("starttls-missing")
        _mark_handshake_checks(ctx.skipped, "STARTTLS is refused")
        return
    except ProbeError as exc:
        ctx.passed("starttls-missing", "STARTTLS advertised")
        _mark_handshake_checks(ctx.error, f"STARTTLS attempt failed: {exc}")
        return
    probes = await _probe_protocols(ctx)
    if not certificate_attempt.handshake_ok and not probes.accepted:
        # A server that refuses every version and one that breaks after 220 look the same from
        # here (both end in an alert or a reset, racing each other): no verdict, an error.
        ctx.passed("starttls-missing", "STARTTLS advertised")
        ctx.error("tls-weak-protocol", "no TLS handshake succeeded, whatever the protocol; "
                  + probes.detail)
        ctx.error("tls-cert-invalid", f"TLS handshake failed: {certificate_attempt.error_text}")
        return
    ctx.passed("starttls-missing", "STARTTLS advertised")
    _check_certificate(ctx, certificate_attempt, probes)
    _judge_protocols(ctx, probes)


def _mark_handshake_checks(record: Callable[[str, str], None], detail: str) -> None:
    """Record the same status for the two checks that need a TLS handshake."""
    for slug in ("tls-weak-protocol", "tls-cert-invalid"):
        record(slug, detail)


async def _attempt(ctx: AuditContext, context: ssl.SSLContext) -> StartTlsAttempt:
    """One new session: EHLO, STARTTLS, handshake with `context` (ProbeError if it cannot run)."""
    async with ctx.session() as probe:
        if not probe.supports("STARTTLS"):
            raise ProbeError("STARTTLS no longer advertised")
        return await try_starttls(probe, context)


def _ehlo_evidence(reply: Reply | None, what: str) -> str:
    if reply is None:
        return what
    keywords = ", ".join(w for w in (line.split(" ", 1)[0] for line in reply.lines[1:]) if w)
    keywords = keywords or "no extensions"
    return f"EHLO reply before STARTTLS ({keywords}): {what}"


# -- auth-plaintext ----------------------------------------------------------------------------

def _check_auth_plaintext(ctx: AuditContext, caps: dict[str, str]) -> None:
    if "AUTH" in caps:
        mechanisms = caps["AUTH"]
    else:  # only the old "AUTH=PLAIN LOGIN" form that broken_sasl_auth_clients adds
        legacy = [k for k in caps if k.startswith("AUTH=")]
        if not legacy:
            ctx.passed("auth-plaintext", "AUTH not advertised before STARTTLS")
            return
        mechanisms = f"{legacy[0][5:]} {caps[legacy[0]]}"
    evidence = f"EHLO on the clear-text connection advertises AUTH {mechanisms}".rstrip()
    ctx.add(Finding.of("auth-plaintext", evidence=evidence))
    ctx.failed("auth-plaintext")


# -- tls-weak-protocol -------------------------------------------------------------------------

@dataclass
class ProtocolProbes:
    """What one handshake per protocol version showed: the set the server accepts, in Postfix's
    names (hardener.postfix.tls_protocols), comparable with what lint computes from main.cf."""

    accepted: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    untested: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    attempts: dict[str, StartTlsAttempt] = field(default_factory=dict)

    @property
    def detail(self) -> str:
        """'accepted: ...; refused: ...; not tested (...): ...; could not test: ...'."""
        notes = []
        if self.accepted:
            notes.append("accepted: " + ", ".join(self.accepted))
        if self.refused:
            notes.append("refused: " + ", ".join(self.refused))
        if self.untested:
            notes.append("not tested (the local OpenSSL cannot offer it): " + ", ".join(self.untested))
        if self.errors:
            notes.append("could not test: " + "; ".join(self.errors))
        return "; ".join(notes)


async def _probe_protocols(ctx: AuditContext) -> ProtocolProbes:
    """One STARTTLS handshake per protocol version (one version offered each time)."""
    probes = ProtocolProbes()
    for name, version in PROBED_PROTOCOLS:
        if not can_offer(version):
            probes.untested.append(name)
            continue
        try:
            attempt = await _attempt(ctx, protocol_context(version))
        except ProbeError as exc:
            probes.errors.append(f"{name}: {exc}")
            continue
        probes.attempts[name] = attempt
        (probes.accepted if attempt.handshake_ok else probes.refused).append(name)
    return probes


def _judge_protocols(ctx: AuditContext, probes: ProtocolProbes) -> None:
    found = weak(probes.accepted)
    if found:
        ciphers = {name: probes.attempts[name].cipher for name in found}
        ctx.add(Finding.of("tls-weak-protocol", evidence="STARTTLS handshake completed with " + ", ".join(
            f"{name} ({ciphers[name]})" if ciphers[name] else name for name in found),
            detail=probes.detail))
        ctx.failed("tls-weak-protocol", probes.detail)
    elif probes.errors:
        ctx.error("tls-weak-protocol", probes.detail)
    elif set(weak(probes.refused)):
        ctx.passed("tls-weak-protocol", probes.detail)
    else:
        ctx.skipped("tls-weak-protocol", probes.detail)


# -- tls-cert-invalid --------------------------------------------------------------------------

def _check_certificate(ctx: AuditContext, verified: StartTlsAttempt, probes: ProtocolProbes) -> None:
    """tls-cert-invalid, from the verifying handshake and the leaf any handshake received."""
    # problem kind -> text; the chain verdict first, then what the leaf itself shows (more precise)
    problems: dict[str, str] = {}
    code = getattr(verified.ssl_error, "verify_code", None)
    if not verified.handshake_ok and code is not None:
        kind, text = _VERIFY_PROBLEMS.get(code, ("untrusted", verified.error_text))
        problems[kind] = text
    leaf = verified.peer_cert_der or next(
        (a.peer_cert_der for a in reversed(probes.attempts.values()) if a.peer_cert_der), None)
    if leaf is None:
        ctx.error("tls-cert-invalid", f"could not read the certificate: {verified.error_text}")
        return
    try:
        cert = x509.load_der_x509_certificate(leaf)
    except ValueError as exc:
        ctx.error("tls-cert-invalid", f"unreadable certificate: {exc}")
        return
    names = expected_names(ctx)
    problems.update(certificate_problems(cert, names))
    if "self-signed" in problems:  # a self-signed leaf is also an untrusted chain: say it once
        problems.pop("untrusted", None)
    subject = _subject(cert)
    if problems:
        ctx.add(Finding.of("tls-cert-invalid",
                           evidence=f"certificate {subject}: " + "; ".join(problems.values())))
        ctx.failed("tls-cert-invalid")
    else:
        checked = f" for {', '.join(names)}" if names else ""
        ctx.passed("tls-cert-invalid", f"certificate {subject} valid{checked}")


def expected_names(ctx: AuditContext) -> list[str]:
    """The names the certificate must cover: the target's host name (the MX name for --mx), or,
    when the target is an IP address, the host name the server gives in its EHLO reply."""
    target = ctx.target
    if target.name:
        return [target.name.rstrip(".")]
    if not target.is_ip:
        return [target.host.rstrip(".")]
    reply = ctx.ehlo_reply
    if reply is not None and reply.lines and reply.lines[0].split():
        return [reply.lines[0].split()[0].rstrip(".")]
    return []


def certificate_problems(cert: x509.Certificate, names: list[str],
                         now: dt.datetime | None = None) -> dict[str, str]:
    """What is wrong with a leaf certificate on its own (dates, self-signed, key, names), as
    problem kind -> text."""
    now = now or dt.datetime.now(dt.timezone.utc)
    problems: dict[str, str] = {}
    if cert.not_valid_after_utc < now:
        problems["expired"] = f"expired on {cert.not_valid_after_utc:%Y-%m-%d}"
    if cert.not_valid_before_utc > now:
        problems["not-yet-valid"] = f"not valid before {cert.not_valid_before_utc:%Y-%m-%d}"
    if cert.issuer == cert.subject and _self_signature_ok(cert):
        problems["self-signed"] = "self-signed"
    weak = _weak_key(cert)
    if weak:
        problems["weak-key"] = weak
    if names and not any(name_matches(cert, n) for n in names):
        problems["name"] = (f"name mismatch (covers {', '.join(cert_names(cert)) or 'no names'}, "
                            f"not {', '.join(names)})")
    return problems


def _self_signature_ok(cert: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(cert)
    except Exception:  # InvalidSignature, or a key type cryptography cannot check
        return False
    return True


def _weak_key(cert: x509.Certificate) -> str:
    try:
        key = cert.public_key()
    except (ValueError, TypeError) as exc:
        return f"unreadable public key ({exc})"
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.key_size < MIN_EC_BITS:
            return f"weak key (EC {key.curve.name}, {key.curve.key_size} bits)"
        return ""
    kind = ("RSA" if isinstance(key, rsa.RSAPublicKey)
            else "DSA" if cert.public_key_algorithm_oid == PublicKeyAlgorithmOID.DSA  # as lint
            else "")
    if kind and key.key_size < MIN_RSA_BITS:  # type: ignore[union-attr]
        return f"weak key ({kind} {key.key_size} bits < {MIN_RSA_BITS})"  # type: ignore[union-attr]
    return ""


def cert_names(cert: x509.Certificate) -> list[str]:
    """DNS and IP names of the certificate (subjectAltName; the CN only when there is none)."""
    try:
        san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    except x509.ExtensionNotFound:
        return [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    names = [str(n) for n in san.get_values_for_type(x509.DNSName)]
    names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return names


def name_matches(cert: x509.Certificate, name: str) -> bool:
    """RFC 6125 matching: exact (case-insensitive) or a wildcard in the left-most label only."""
    try:
        wanted_ip = ipaddress.ip_address(name)
    except ValueError:
        wanted_ip = None
    host = name.lower().rstrip(".")
    for pattern in cert_names(cert):
        if wanted_ip is not None:
            try:
                if ipaddress.ip_address(pattern) == wanted_ip:
                    return True
            except ValueError:
                pass
            continue
        pattern = pattern.lower().rstrip(".")
        if pattern == host:
            return True
        if pattern.startswith("*.") and "." in host:
            label, _, rest = host.partition(".")
            if label and rest == pattern[2:] and "." in rest:
                return True
    return False


def _subject(cert: x509.Certificate) -> str:
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return f"CN={cns[0].value}" if cns else cert.subject.rfc4514_string() or "(empty subject)"
