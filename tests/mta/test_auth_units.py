"""AUTH's parts without the network: the mechanism state machines, strict base64, the throttle,
the SASL settings, per-service -o settings and the TLS key check (hardener/mta/smtpd/auth.py,
hardener/mta/config/sasl.py, hardener/mta/config/settings.py, hardener/mta/smtpd/context.py)."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from hardener.errors import ConfigError
from hardener.mta.config.sasl import sasl_settings, tls_level
from hardener.mta.config.settings import load_settings
from hardener.mta.smtpd.auth import (BAD_AUTH, BAD_PROTOCOL, AuthThrottle, Login, Plain,
                                     decode_response, printable)
from hardener.mta.smtpd.context import tls_context_from
from hardener.postfix.maincf import parse_main_cf


def test_plain() -> None:
    assert Plain().start(None).challenge == b""
    step = Plain().start(b"\0alice\0pw")
    assert (step.name, step.password, step.failure) == ("alice", b"pw", None)
    assert Plain().step(b"alice\0alice\0pw").failure is None          # authzid = authcid
    assert Plain().step(b"bob\0alice\0pw").failure == BAD_AUTH         # acting for another
    for bad in (b"", b"alice", b"\0alice", b"\0\0pw", b"\0alice\0", b"\0a\0b\0c",
                b"\0\xff\xfe\0pw", b"\0" + b"x" * 256 + b"\0pw"):
        assert Plain().step(bad).failure == BAD_PROTOCOL, bad


def test_login() -> None:
    mech = Login()
    assert mech.start(None).challenge == b"Username:"
    assert mech.step(b"alice").challenge == b"Password:"
    step = mech.step(b"pw")
    assert (step.name, step.password) == ("alice", b"pw")
    mech = Login()
    assert mech.start(b"alice").challenge == b"Password:"
    assert Login().start(b"").failure == BAD_PROTOCOL
    mech = Login()
    mech.start(None)
    mech.step(b"alice")
    assert mech.step(b"").failure == BAD_PROTOCOL


@pytest.mark.parametrize("text,expected", [
    ("YWxpY2U=", b"alice"), ("", None), ("YWxpY2U", None), ("YWxpY2U==", None),
    ("YWxp Y2U=", None), (" YWxpY2U=", None), ("!!!!", None), ("YWxpY2V=", None),
    ("=", None), ("YQ==", b"a"),
])
def test_base64_strict(text: str, expected: bytes | None) -> None:
    assert decode_response(text) == expected


def test_printable_names_in_the_log() -> None:
    assert printable("al\nice x\x00" + "y" * 200) == "al?ice?x?" + "y" * 91


def test_throttle_rate_limit_and_failure_delay() -> None:
    now = [100.0]
    throttle = AuthThrottle(2, 60, [], clock=lambda: now[0])
    assert throttle.command("192.0.2.1") is None and throttle.command("192.0.2.1") is None
    assert throttle.command("192.0.2.1") == 3
    assert throttle.command("192.0.2.2") is None
    now[0] += 61
    assert throttle.command("192.0.2.1") is None
    assert [throttle.failed("192.0.2.1") for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert throttle.failed("192.0.2.3") == 1
    now[0] += 61
    assert throttle.failed("192.0.2.1") == 1
    exempt = AuthThrottle(1, 60, [__import__("ipaddress").ip_network("192.0.2.0/24")])
    assert all(exempt.command("192.0.2.9") is None for _ in range(5))


def test_throttle_memory_is_bounded() -> None:
    throttle = AuthThrottle(1, 60, [], max_clients=10)
    for i in range(100):
        throttle.failed(f"10.0.0.{i}")
        throttle.command(f"10.0.0.{i}")
    assert len(throttle.failures) <= 10 and len(throttle.commands) <= 10


def test_sasl_settings() -> None:
    main = parse_main_cf("smtpd_sasl_auth_enable = yes\nsmtpd_tls_auth_only = yes\n"
                         "smtpd_sasl_security_options = noanonymous, noplaintext\n"
                         "smtpd_sasl_tls_security_options = noanonymous\n")
    sasl = sasl_settings(main)
    assert sasl.offered(tls=False) == () and sasl.offered(tls=True) == ("PLAIN", "LOGIN")
    main = parse_main_cf("smtpd_sasl_auth_enable = yes\nsmtpd_sasl_mechanism_filter = login\n")
    assert sasl_settings(main).offered(tls=False) == ("LOGIN",)
    main = parse_main_cf("smtpd_sasl_auth_enable = yes\n"
                         "smtpd_sasl_mechanism_filter = !plain, static:rest\n")
    assert sasl_settings(main).offered(tls=True) == ("LOGIN",)
    main = parse_main_cf("smtpd_sasl_auth_enable = no\n")
    assert sasl_settings(main).offered(tls=True) == ()
    bad = parse_main_cf("x = 1\nsmtpd_sasl_security_options = noanonymous, nosuch\n")
    with pytest.raises(ConfigError) as err:
        sasl_settings(bad)
    assert err.value.one_line() == ("main.cf:2: smtpd_sasl_security_options: unknown SASL "
                                    "security option 'nosuch'")


@pytest.mark.parametrize("text,level", [
    ("", "none"), ("smtpd_use_tls = yes", "may"), ("smtpd_enforce_tls = yes", "encrypt"),
    ("smtpd_tls_security_level = may\nsmtpd_enforce_tls = yes", "may"),
    ("smtpd_tls_security_level = Encrypt", "encrypt"),
])
def test_tls_level(text: str, level: str) -> None:
    assert tls_level(parse_main_cf(text)) == level


MASTER = """\
127.0.0.1:{port} inet n - n - - smtpd
127.0.0.1:{sub} inet n - n - - smtpd
{options}
"""


def _config(tmp_path: Path, options: str, main: str = "") -> Path:
    (tmp_path / "main.cf").write_text(
        "mail_owner = nobody\ninet_interfaces = 127.0.0.1\ninet_protocols = ipv4\n"
        f"queue_directory = {tmp_path}/queue\nmua_restrictions = permit_sasl_authenticated, "
        "reject\ncompatibility_level = 3.6\n" + main)
    (tmp_path / "master.cf").write_text(MASTER.format(port=2525, sub=2587, options=options))
    return tmp_path


def test_service_settings_from_overrides(tmp_path: Path) -> None:
    settings = load_settings(_config(tmp_path, "  -o smtpd_client_restrictions=$mua_restrictions\n"
                                               "  -o { smtpd_sasl_auth_enable = yes }\n"
                                               "  -o smtpd_tls_auth_only=yes"))
    smtp = settings.for_service("127.0.0.1:2525")
    sub = settings.for_service("127.0.0.1:2587")
    assert smtp is settings and not smtp.sasl.enabled
    assert smtp.restrictions["smtpd_client_restrictions"] == []
    assert sub.sasl.enabled and sub.sasl.tls_only
    assert sub.restrictions["smtpd_client_restrictions"] == ["permit_sasl_authenticated", "reject"]
    assert sub.queue_directory == settings.queue_directory


@pytest.mark.parametrize("option,message", [
    ("-o smtpd_client_restrictions=permit_nothing",
     "master.cf:2: smtpd_client_restrictions: service 127.0.0.1:2587: unknown or unsupported "
     "restriction 'permit_nothing'"),
    ("-o mail_owner=root", "master.cf:2: mail_owner: -o mail_owner cannot differ per service"),
    ("-o smtpd_tls_security_level=dane",
     "master.cf:2: smtpd_tls_security_level: service 127.0.0.1:2587: unknown value 'dane'"),
])
def test_bad_override_names_its_master_cf_line(tmp_path: Path, option: str, message: str) -> None:
    config = _config(tmp_path, "")
    text = (config / "master.cf").read_text().rstrip("\n") + f" {option}\n"
    (config / "master.cf").write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(config)
    assert err.value.one_line().startswith(f"{config / message.split(':')[0]}:"
                                           f"{message.split(':', 1)[1]}")


def test_group_readable_key_file_is_refused(tmp_path: Path, cert_factory) -> None:
    cert = cert_factory.valid("mx.hardener.test")
    key = tmp_path / "server.key"
    key.write_bytes(cert.key.read_bytes())
    config = _config(tmp_path, "", f"smtpd_tls_security_level = may\nsmtpd_tls_cert_file = "
                                   f"{cert.chain}\nsmtpd_tls_key_file = {key}\n")
    for mode in (0o640, 0o604):
        os.chmod(key, mode)
        with pytest.raises(ConfigError) as err:
            tls_context_from(load_settings(config))
        assert err.value.one_line() == (
            f"{config / 'main.cf'}:9: smtpd_tls_key_file: TLS key file {key} is readable by its "
            f"group or others (mode {mode:04o}): refused, chmod 0600 it")
    os.chmod(key, 0o600)
    assert tls_context_from(load_settings(config)) is not None


def test_unloadable_certificate_at_encrypt_is_refused(tmp_path: Path) -> None:
    config = _config(tmp_path, "", "smtpd_tls_security_level = encrypt\n"
                                   f"smtpd_tls_cert_file = {tmp_path}/missing.pem\n")
    with pytest.raises(ConfigError, match="cannot load TLS certificate .* \\(mandatory TLS\\)"):
        tls_context_from(load_settings(config))


def test_auth_plain_initial_response_roundtrip() -> None:
    text = base64.b64encode(b"\0alice\0pw").decode()
    assert Plain().start(decode_response(text)).name == "alice"
