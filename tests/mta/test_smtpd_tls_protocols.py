"""smtpd's STARTTLS protocol versions come from the protocol list in force, read by the same function
lint uses (hardener/postfix/tls_protocols.py), with hardener's floor of TLS 1.2; a list Postfix
would refuse, or one that leaves nothing at or above TLS 1.2, stops the daemon with one line."""

from __future__ import annotations

import socket
import ssl

import pytest

from hardener.errors import ConfigError
from hardener.mta.config.settings import load_settings
from hardener.mta.smtpd.context import tls_context_from


def _tls_settings(cert, **extra: str) -> dict[str, str]:
    return {"smtpd_tls_security_level": "may", "smtpd_tls_cert_file": str(cert.chain),
            "smtpd_tls_key_file": str(cert.key), **extra}


@pytest.mark.parametrize(("settings", "versions"), [
    ({}, ("TLSv1_2", "TLSv1_3")),                                       # Postfix's >=TLSv1, floored
    ({"smtpd_tls_protocols": ">=TLSv1.3"}, ("TLSv1_3", "TLSv1_3")),
    ({"smtpd_tls_protocols": "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1, !TLSv1.2"}, ("TLSv1_3", "TLSv1_3")),
    ({"smtpd_tls_protocols": "TLSv1.2"}, ("TLSv1_2", "TLSv1_2")),        # inclusion list
    ({"smtpd_tls_protocols": ">=tlsv1.2:<=TLSv1.2"}, ("TLSv1_2", "TLSv1_2")),
])
def test_versions_follow_the_list(mta_factory, cert_factory, settings, versions):
    cert = cert_factory.valid("mx.hardener.test")
    mta = mta_factory(_tls_settings(cert, **settings), start=False)
    ctx = tls_context_from(load_settings(mta.config_dir))
    assert ctx is not None
    assert (ctx.minimum_version.name, ctx.maximum_version.name) == versions


@pytest.mark.parametrize(("value", "message"), [
    ("TLSv9", "invalid TLS protocol list 'TLSv9'"),
    ("<=TLSv1.1", "leaves no protocol at or above TLSv1.2"),
])
def test_unusable_list_is_refused_with_its_line(mta_factory, cert_factory, value, message):
    cert = cert_factory.valid("mx.hardener.test")
    mta = mta_factory(_tls_settings(cert, smtpd_tls_protocols=value), start=False)
    with pytest.raises(ConfigError) as info:
        tls_context_from(load_settings(mta.config_dir))
    assert message in info.value.message
    assert "smtpd_tls_protocols" in info.value.one_line() and "main.cf:" in info.value.one_line()


def _handshake(mta, cert, version: ssl.TLSVersion) -> bool:
    ctx = ssl.create_default_context(cafile=str(cert.ca))
    if version < ssl.TLSVersion.TLSv1_2:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")   # Debian's OpenSSL refuses to offer them otherwise
    ctx.minimum_version = ctx.maximum_version = version
    with socket.create_connection((mta.address, mta.port), timeout=10) as raw:
        f = raw.makefile("rb")
        f.readline()
        raw.sendall(b"EHLO client.example\r\n")
        while not f.readline().startswith(b"250 "):
            pass
        raw.sendall(b"STARTTLS\r\n")
        assert f.readline().startswith(b"220")
        try:
            with ctx.wrap_socket(raw, server_hostname="mx.hardener.test"):
                return True
        except (ssl.SSLError, OSError):
            return False


def test_running_daemon_negotiates_only_the_listed_versions(mta_factory, cert_factory):
    cert = cert_factory.valid("mx.hardener.test")
    mta = mta_factory(_tls_settings(cert, smtpd_tls_protocols=">=TLSv1.3"))
    assert _handshake(mta, cert, ssl.TLSVersion.TLSv1_3)
    assert not _handshake(mta, cert, ssl.TLSVersion.TLSv1_2)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")   # ssl.TLSVersion.TLSv1 / TLSv1_1
def test_postfix_default_list_still_refuses_tls_1_0_and_1_1(mta_factory, postfix_factory,
                                                            cert_factory):
    """smtpd_tls_protocols unset is Postfix's `>=TLSv1`; hardener's floor refuses 1.0 and 1.1.
    Control: a real Postfix with the same settings completes a TLS 1.0 handshake with this client,
    so a refusal is the server's, not this machine's OpenSSL refusing to offer TLS 1.0."""
    cert = cert_factory.valid("mx.hardener.test")
    postfix = postfix_factory(_tls_settings(cert))
    assert _handshake(postfix, cert, ssl.TLSVersion.TLSv1)
    mta = mta_factory(_tls_settings(cert))
    accepted = {v.name for v in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1,
                                 ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3)
                if _handshake(mta, cert, v)}
    assert accepted == {"TLSv1_2", "TLSv1_3"}
