"""Raw STARTTLS attempts for the TLS checks.

The TLS checks make each attempt on its own connection (hardener.audit.probe.Probe): greeting, EHLO,
STARTTLS, TLS handshake with a client SSLContext chosen here, then QUIT. Every read and the handshake are
bounded by the timeout. Nothing here decides what is a finding; it returns what happened.

Debian's OpenSSL 3 refuses SSLv3, TLS 1.0 and TLS 1.1 at its default security level, so
`protocol_context()` builds a context pinned to one protocol with "DEFAULT:@SECLEVEL=0" ciphers, and
`can_offer()` tells, without touching the network, whether the local library can offer that protocol
at all (an untestable protocol is reported as such, never as "not accepted").
"""

from __future__ import annotations

import ssl
import warnings
from dataclasses import dataclass, field

from hardener.audit.probe import Probe, ProbeError, Reply, TLSFailed
from hardener.postfix.tls_protocols import VERSION_NUMBERS

# Every version a client can pin, oldest first, named as Postfix names them: the wire versions of
# hardener.postfix.tls_protocols, which ssl.TLSVersion numbers alike (TLSv1.2 is 0x0303). SSLv3 is
# usually compiled out of OpenSSL 3; can_offer() finds out.
PROBED_PROTOCOLS: tuple[tuple[str, ssl.TLSVersion], ...] = tuple(
    (name, ssl.TLSVersion(number)) for name, number in VERSION_NUMBERS.items())

_WEAK_CIPHERS = "DEFAULT:@SECLEVEL=0"


class StartTlsRefused(ProbeError):
    """STARTTLS was advertised but answered with something other than 220 (e.g. 454)."""

    kind = "starttls refused"

    def __init__(self, reply: Reply) -> None:
        super().__init__(f"STARTTLS answered {reply}")
        self.reply = reply


@dataclass
class StartTlsAttempt:
    """What one EHLO-STARTTLS-handshake attempt saw."""

    ehlo: Reply | None = None
    starttls_offered: bool = False
    starttls_reply: Reply | None = None
    handshake_ok: bool = False
    protocol: str | None = None
    cipher: str | None = None
    peer_cert_der: bytes | None = None
    peer_chain_der: list[bytes] = field(default_factory=list)
    ssl_error: BaseException | None = None

    @property
    def error_text(self) -> str:
        """The handshake failure as a short text (OpenSSL reason or verify message)."""
        err = self.ssl_error
        if err is None:
            return ""
        if isinstance(err, ssl.SSLCertVerificationError) and err.verify_message:
            return f"{err.verify_message} (verify code {err.verify_code})"
        reason = getattr(err, "reason", None)
        return str(reason) if reason else str(err) or type(err).__name__  # ConnectionResetError()

    @property
    def verify_code(self) -> int | None:
        err = self.ssl_error
        return err.verify_code if isinstance(err, ssl.SSLCertVerificationError) else None


def protocol_context(version: ssl.TLSVersion) -> ssl.SSLContext:
    """A non-verifying client context that offers exactly `version`, weak ciphers allowed."""
    return _non_verifying_context(version, version)


def any_protocol_context() -> ssl.SSLContext:
    """A non-verifying client context accepting any protocol the library can do (to read the cert)."""
    return _non_verifying_context(ssl.TLSVersion.MINIMUM_SUPPORTED)


def _non_verifying_context(minimum: ssl.TLSVersion,
                           maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    """A client context that checks neither chain nor name, offers minimum..maximum and SECLEVEL 0
    ciphers (ValueError/SSLError when the local OpenSSL cannot)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = minimum
        if maximum is not None:
            ctx.maximum_version = maximum
    ctx.set_ciphers(_WEAK_CIPHERS)
    return ctx


def verifying_context(ca_file: str | None) -> ssl.SSLContext:
    """A client context that verifies the chain against the system store (+ ca_file).

    Host names are compared by the caller (the target may be an IP address and the expected name
    the MX or EHLO name), so check_hostname is off. Old protocols and SECLEVEL 0 are allowed so
    that the verdict is about trust and dates only, on any server that can do TLS at all; key sizes
    are judged by the caller.
    """
    ctx = any_protocol_context()
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if ca_file:
        ctx.load_verify_locations(cafile=ca_file)
    return ctx


def can_offer(version: ssl.TLSVersion) -> bool:
    """Whether the local OpenSSL can send a ClientHello for `version` (no network used)."""
    try:
        ctx = protocol_context(version)
    except (ValueError, ssl.SSLError):
        return False
    sslobj = ctx.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_side=False)
    try:
        sslobj.do_handshake()
    except ssl.SSLWantReadError:
        return True
    except ssl.SSLError:
        return False
    return True


async def try_starttls(probe: Probe, context: ssl.SSLContext) -> StartTlsAttempt:
    """STARTTLS and the TLS handshake on a probe that has said EHLO.

    Raises hardener.audit.probe.ProbeError when the clear-text part fails (timeout, disconnect,
    garbage) or STARTTLS is answered with anything but 220. A failed handshake is not raised: it is
    returned in `ssl_error` (the OpenSSL exception, with verify_code for certificate failures); the
    probe is then closed.
    """
    attempt = StartTlsAttempt(ehlo=probe.ehlo_reply, starttls_offered=probe.supports("STARTTLS"))
    try:
        attempt.starttls_reply = await probe.starttls(context)
    except TLSFailed as exc:
        # probe.py raises TLSFailed from the OpenSSL error; keep the original for verify_code.
        attempt.ssl_error = exc.__cause__ or exc.__context__ or exc
        return attempt
    if attempt.starttls_reply.code != 220:
        raise StartTlsRefused(attempt.starttls_reply)
    attempt.handshake_ok = True
    sslobj = probe.ssl_object
    if sslobj is not None:
        attempt.protocol = sslobj.version()
        cipher = sslobj.cipher()
        attempt.cipher = cipher[0] if cipher else None
        attempt.peer_cert_der = sslobj.getpeercert(binary_form=True)
        attempt.peer_chain_der = _unverified_chain(sslobj)
    return attempt


def _unverified_chain(sslobj: ssl.SSLObject) -> list[bytes]:
    """The certificates the server sent, leaf first, when this Python exposes them (3.13 public,
    3.10-3.12 private `_sslobj.get_unverified_chain`); [] otherwise."""
    getter = getattr(sslobj, "get_unverified_chain", None)
    if getter is None:
        inner = getattr(sslobj, "_sslobj", None)
        getter = getattr(inner, "get_unverified_chain", None)
    if getter is None:
        return []
    try:
        chain = getter() or []
    except (ssl.SSLError, ValueError):
        return []
    out: list[bytes] = []
    for cert in chain:
        if isinstance(cert, bytes):
            out.append(cert)
        elif hasattr(cert, "public_bytes"):
            out.append(cert.public_bytes(ssl._ssl.ENCODING_DER))  # type: ignore[attr-defined]
    return out
