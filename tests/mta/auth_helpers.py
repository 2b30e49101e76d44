"""Shared parts of the AUTH tests: a daemon with STARTTLS and SASL users, swaks, a raw TLS client."""

from __future__ import annotations

import base64
import os
import ssl
import subprocess
import sys
import time

from tests.fixtures.mta import SmtpClient

PASSWORD = "c0rrect horse"
USERS = {"alice": PASSWORD}


def plain(user: str, password: str, authzid: str = "") -> str:
    """An AUTH PLAIN initial response."""
    return base64.b64encode(f"{authzid}\0{user}\0{password}".encode()).decode()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def add_user(config_dir, user: str, password: str) -> subprocess.CompletedProcess:
    """`hardener mta passwd USER --password-stdin`, the real command."""
    return subprocess.run([sys.executable, "-m", "hardener", "mta", "passwd", user, "--config",
                           str(config_dir), "--password-stdin"], input=password.encode() + b"\n",
                          capture_output=True, timeout=60)


def tls_settings(cert) -> dict[str, str]:
    """main.cf lines for STARTTLS with the given test certificate."""
    return {"smtpd_tls_security_level": "may", "smtpd_tls_cert_file": str(cert.chain),
            "smtpd_tls_key_file": str(cert.key), "smtpd_tls_protocols": ">=TLSv1.2",
            "smtp_tls_security_level": "none"}


SASL = {"smtpd_sasl_auth_enable": "yes", "smtpd_tls_auth_only": "yes",
        "smtpd_sasl_security_options": "noanonymous, noplaintext",
        "smtpd_sasl_tls_security_options": "noanonymous",
        "smtpd_relay_restrictions": "permit_mynetworks, permit_sasl_authenticated, "
                                    "reject_unauth_destination"}


def start_sasl_mta(mta_factory, cert, main_cf: dict[str, str] | None = None, *,
                   users: dict[str, str] | None = None, **kwargs):
    """A daemon with STARTTLS, AUTH after STARTTLS only, and `users` (default alice)."""
    mta = mta_factory({**tls_settings(cert), **SASL, **(main_cf or {})}, start=False, **kwargs)
    for user, password in (USERS if users is None else users).items():
        done = add_user(mta.config_dir, user, password)
        assert done.returncode == 0, done.stderr
    mta.start()
    return mta


def swaks(server: str, port: int, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run swaks against server:port; returns the finished process (text output)."""
    return subprocess.run(["swaks", "--server", server, "--port", str(port), "--timeout", "30",
                           "--helo", "client.example", *args],
                          capture_output=True, text=True, timeout=timeout)


class TlsClient(SmtpClient):
    """SmtpClient that can STARTTLS (certificate not verified: the test's own)."""

    def starttls(self) -> tuple[int, str]:
        code, text = self.cmd("STARTTLS")
        if code == 220:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            self.sock = ctx.wrap_socket(self.sock)
        return code, text

    def ehlo_tls(self) -> str:
        """Greeting, EHLO, STARTTLS, EHLO again; returns the second EHLO reply."""
        assert self.greeting()[0] == 220
        assert self.cmd("EHLO client.example")[0] == 250
        assert self.starttls()[0] == 220
        code, text = self.cmd("EHLO client.example")
        assert code == 250, text
        return text


def connect(mta, source: str | None = None) -> TlsClient:
    return TlsClient(mta.address, mta.port, source=source)


def cyrus_postfix(postfix_factory, cert, hostname: str, main_cf: dict[str, str] | None = None):
    """A Postfix with smtpd_sasl_type cyrus, a sasldb of its own holding alice."""
    inst = postfix_factory({**tls_settings(cert), **SASL, "myhostname": hostname,
                            "smtpd_sasl_type": "cyrus", "smtpd_sasl_path": "smtpd",
                            "smtpd_client_event_limit_exceptions": "", **(main_cf or {})},
                           start=False)
    sasl_dir = inst.config_dir / "sasl"
    sasl_dir.mkdir()
    db = sasl_dir / "sasldb2"
    (sasl_dir / "smtpd.conf").write_text("pwcheck_method: auxprop\nauxprop_plugin: sasldb\n"
                                         f"mech_list: PLAIN LOGIN\nsasldb_path: {db}\n")
    subprocess.run(["saslpasswd2", "-f", str(db), "-c", "-p", "-u", hostname, "alice"],
                   input=PASSWORD.encode(), check=True, capture_output=True)
    os.chmod(db, 0o644)   # Postfix's smtpd reads it as the postfix user (a test-only database)
    main = inst.config_dir / "main.cf"
    main.write_text(main.read_text() + f"cyrus_sasl_config_path = {sasl_dir}\n")
    past = time.time() - 5
    os.utime(main, (past, past))
    inst.start()
    return inst
