"""tls-cert-invalid: the server certificate named in main.cf, read with `cryptography`.

Judged: expired or not yet valid, self-signed, a chain with a gap (an issuer neither in the file
nor in the system CA store), a name that does not cover myhostname (subject alternative names, the
common name only when there are none; `*.` wildcards match one label), and a weak key (RSA or DSA
under 2048 bits, EC under 256). A file that cannot be read is not guessed at: the
check says which file and why, and is recorded as skipped when nothing else could be checked.
"""

from __future__ import annotations

import warnings
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509.oid import NameOID, PublicKeyAlgorithmOID

from hardener.lint.base import LintContext, Skip, finding
from hardener.lint.tls import certificate_parameters, security_level, starttls_discarded
from hardener.report.model import Finding

MIN_RSA_BITS = 2048
MIN_EC_BITS = 256
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"   # Debian's ca-certificates


def _certificates(path: Path) -> list[x509.Certificate]:
    """The certificates in a PEM file, leaf first (a chain file may hold the key before them).

    Empty for a file holding only a private key (smtpd_tls_chain_files may list the key apart).
    """
    data = path.read_bytes()
    certs = x509.load_pem_x509_certificates(data) if b"-----BEGIN CERTIFICATE" in data else []
    if not certs and b"PRIVATE KEY-----" not in data:
        raise ValueError("no PEM certificate in the file")
    return certs


@lru_cache(maxsize=4)
def system_ca_subjects(bundle: str = SYSTEM_CA_BUNDLE) -> frozenset[x509.Name]:
    """Subjects of the CA certificates in the system trust store (empty if unreadable).

    Each certificate is loaded on its own, so one that a newer `cryptography` refuses (the store
    holds a few with non-positive serial numbers) does not hide the others.
    """
    try:
        text = Path(bundle).read_bytes()
    except OSError:
        return frozenset()
    end = b"-----END CERTIFICATE-----"
    subjects = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for block in text.split(end)[:-1]:
            try:
                subjects.add(x509.load_pem_x509_certificate(block + end).subject)
            except ValueError:
                continue
    return frozenset(subjects)


def _chain_gap(chain: list[x509.Certificate], bundle: str) -> str | None:
    """Why peers cannot build a path from the leaf to a CA they trust, or None.

    Lint cannot know each peer's trust store; it reports only the gap every peer hits: an issuer
    that is neither sent in the file nor a CA of the system store.
    """
    subjects = {c.subject for c in chain}
    cert = chain[0]
    for _ in range(len(chain) + 1):
        if cert.issuer == cert.subject:
            return None
        if cert.issuer not in subjects:
            if cert.issuer in system_ca_subjects(bundle):
                return None
            return (f"incomplete chain: issuer {cert.issuer.rfc4514_string()} is neither in the file "
                    f"nor a CA of the system store, so peers cannot verify it")
        cert = next(c for c in chain if c.subject == cert.issuer)
    return None


def _names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        return [n.lower() for n in san.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        return [str(a.value).lower() for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]


def name_matches(pattern: str, host: str) -> bool:
    """RFC 6125 matching: exact, or `*.example.com` covering exactly one label."""
    pattern, host = pattern.rstrip(".").lower(), host.rstrip(".").lower()
    if pattern == host:
        return True
    if pattern.startswith("*.") and "." in host:
        return host.split(".", 1)[1] == pattern[2:]
    return False


def _self_signed(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    key = cert.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(),
                       cert.signature_hash_algorithm)  # type: ignore[arg-type]
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes,
                       ec.ECDSA(cert.signature_hash_algorithm))  # type: ignore[arg-type]
        elif isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
            key.verify(cert.signature, cert.tbs_certificate_bytes)
        else:
            return True
    except Exception:
        return False
    return True


def _weak_key(cert: x509.Certificate) -> str | None:
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        return f"RSA key of {key.key_size} bits (under {MIN_RSA_BITS})"
    if cert.public_key_algorithm_oid == PublicKeyAlgorithmOID.DSA:  # naming dsa.* warns (>= 43)
        return f"DSA key of {key.key_size} bits (DSA is deprecated)"
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.key_size < MIN_EC_BITS:
        return f"EC key on {key.curve.name} ({key.curve.key_size} bits, under {MIN_EC_BITS})"
    return None


def certificate_problems(chain: list[x509.Certificate], hostname: str, now: datetime,
                         bundle: str = SYSTEM_CA_BUNDLE) -> list[str]:
    """Every problem of the leaf chain[0] for a server called `hostname` at time `now`."""
    cert = chain[0]
    problems = []
    not_after = cert.not_valid_after_utc
    not_before = cert.not_valid_before_utc
    if now > not_after:
        problems.append(f"expired on {not_after:%Y-%m-%d %H:%M} UTC")
    if now < not_before:
        problems.append(f"not valid before {not_before:%Y-%m-%d %H:%M} UTC")
    if _self_signed(cert):
        problems.append(f"self-signed (issuer = subject = {cert.subject.rfc4514_string()})")
    else:
        gap = _chain_gap(chain, bundle)
        if gap:
            problems.append(gap)
    names = _names(cert)
    if hostname and not any(name_matches(n, hostname) for n in names):
        problems.append(f"names {', '.join(names) or '(none)'} do not cover myhostname {hostname}")
    weak = _weak_key(cert)
    if weak:
        problems.append(weak)
    return problems


def check_certificate(ctx: LintContext) -> list[Finding]:
    """tls-cert-invalid: problems of every certificate file the SMTP server would load."""
    if security_level(ctx)[0] == "none":
        raise Skip("TLS is off (starttls-missing covers it)")
    if starttls_discarded(ctx):
        raise Skip("smtpd_discard_ehlo_keywords hides STARTTLS (starttls-missing covers it)")
    names = certificate_parameters(ctx)
    if not names:
        raise Skip("no certificate configured (starttls-missing covers it)")
    hostname = ctx.value("myhostname").strip()
    now = ctx.now if ctx.now.tzinfo else ctx.now.replace(tzinfo=timezone.utc)
    found: list[Finding] = []
    unread: list[str] = []
    for name in names:
        for file in ctx.words(name):
            path = Path(file)
            try:
                chain = _certificates(path)
            except (OSError, ValueError) as err:
                reason = getattr(err, "strerror", None) or str(err)
                unread.append(f"{file} ({name}): {reason}")
                continue
            if not chain:
                continue
            problems = certificate_problems(chain, hostname, now)
            if problems:
                found.append(finding(ctx, "tls-cert-invalid", name,
                                     f"{ctx.describe(name)}: certificate {file}: "
                                     + "; ".join(problems)))
    if unread and not found:
        raise Skip("cannot read " + "; ".join(unread))
    if unread:
        found[0].detail = "Not checked: " + "; ".join(unread)
    return found


CHECKS = {"tls-cert-invalid": check_certificate}
