"""main.cf parsing and expansion: unit tests (the postconf comparison is test_maincf_vs_postconf.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hardener.errors import ConfigError
from hardener.postfix import load_main_cf, parse_main_cf
from hardener.postfix.maincf import OVERRIDE_FILE
from hardener.report.model import Location
from tests.postfix.postconf_tools import postconf

TEXT = """\
# comment
myhostname = mx.example.com
smtpd_relay_restrictions = permit_mynetworks,
    # comment inside
    reject_unauth_destination
relayhost = [first.example.com]
relayhost = [second.example.com]:587
empty_one =
maximal_queue_lifetime = 3
bounce_queue_lifetime = 2h
message_size_limit = 10240000
smtpd_helo_required = YES
inline_list = inline:{ a=b, c=d } hash:/etc/x, ,regexp:/y
"""


@pytest.fixture
def cf():
    return parse_main_cf(TEXT, "/etc/postfix/main.cf")


def test_values_locations_and_names(cf) -> None:
    assert cf.get("relayhost") == "[second.example.com]:587"
    assert cf.location("relayhost") == Location("/etc/postfix/main.cf", 7)
    assert len(cf.definitions_of("relayhost")) == 2
    assert cf.location("smtpd_relay_restrictions") == Location("/etc/postfix/main.cf", 3)
    assert cf.get_list("smtpd_relay_restrictions") == ["permit_mynetworks", "reject_unauth_destination"]
    assert cf.names() == ["myhostname", "smtpd_relay_restrictions", "relayhost", "empty_one",
                          "maximal_queue_lifetime", "bounce_queue_lifetime", "message_size_limit",
                          "smtpd_helo_required", "inline_list"]
    assert cf.is_set("empty_one") and cf.raw("empty_one") == "" and cf.get("empty_one") == ""
    assert not cf.is_set("mydomain") and cf.raw("mydomain") is None and cf.location("mydomain") is None


def test_defaults_unknown_and_compatibility(cf) -> None:
    assert cf.get("mydomain") == "example.com"
    assert cf.get("smtpd_banner") == "mx.example.com ESMTP Postfix"
    assert cf.get("no_such_parameter") == ""
    assert cf.compatibility_level == "0"
    assert cf.get("mynetworks_style") == "subnet"
    assert cf.get("relay_domains") == "mx.example.com, localhost.example.com, localhost"
    assert parse_main_cf("compatibility_level = 2\n").get("relay_domains") == ""
    modern = parse_main_cf("compatibility_level = 3.6\n")
    assert modern.get("smtpd_relay_restrictions") == (
        "permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination")
    assert modern.get_bool("smtputf8_enable") is True
    assert cf.get_bool("smtputf8_enable") is False
    assert cf.get_bool("append_dot_mydomain") is True


def test_typed_getters(cf) -> None:
    assert cf.get_time("maximal_queue_lifetime") == 3 * 86400   # default unit of this one: days
    assert cf.get_time("bounce_queue_lifetime") == 7200
    assert cf.get_time("smtpd_timeout") == 300
    assert cf.get_time("minimal_backoff_time") == 300
    assert cf.get_size("message_size_limit") == 10240000
    assert cf.get_int("smtpd_recipient_limit") == 1000
    assert cf.get_bool("smtpd_helo_required") is True
    assert cf.get_bool("disable_vrfy_command") is False
    assert cf.get_list("inline_list") == ["inline:{ a=b, c=d }", "hash:/etc/x", "regexp:/y"]
    bad = parse_main_cf("smtpd_helo_required = maybe\nsmtpd_timeout = 5 m\nmessage_size_limit = 1e6\n")
    for getter, name, line in ((bad.get_bool, "smtpd_helo_required", 1),
                               (bad.get_time, "smtpd_timeout", 2),
                               (bad.get_int, "message_size_limit", 3)):
        with pytest.raises(ConfigError) as err:
            getter(name)
        assert err.value.line == line and err.value.field == name


def test_overrides_act_like_postconf_o(tmp_path: Path) -> None:
    (tmp_path / "main.cf").write_text("myhostname = a.example.com\nsmtpd_banner = $myhostname hi\n")
    cf = load_main_cf(tmp_path, {"myhostname": "b.example.com"})
    assert cf.get("smtpd_banner") == "b.example.com hi"
    assert cf.location("myhostname").file == OVERRIDE_FILE
    theirs = postconf(tmp_path, "-o", "myhostname=b.example.com", "-hx", "smtpd_banner").strip()
    assert theirs == cf.get("smtpd_banner")
    service = cf.with_overrides({"smtpd_banner": "$myhostname ESMTP"})
    assert service.get("smtpd_banner") == "b.example.com ESMTP" and cf.get("smtpd_banner") == "b.example.com hi"
    assert cf.path == (tmp_path / "main.cf").resolve()
    assert cf.get("config_directory") == str(tmp_path.resolve())


def test_raw_parameters_are_not_expanded() -> None:
    cf = parse_main_cf("smtpd_reject_footer = \\c$client_address $$x\nluser_relay = $user@example.com\n")
    assert cf.get("smtpd_reject_footer") == "\\c$client_address $$x"
    assert cf.get("luser_relay") == "$user@example.com"


@pytest.mark.parametrize("text,line,message", [
    ("foo\n", 1, "missing '=' after attribute name"),
    ("myhostname = a\n=nothing\n", 2, "missing attribute name"),
    ("myhostname a.b = c\n", 1, "missing '=' after attribute name"),
    ("  leading = cont\n", 1, "logical line must not start with whitespace"),
    ("# c\n\n   orphan\nmyhostname = x\n", 3, "logical line must not start with whitespace"),
])
def test_syntax_errors_name_file_and_line(text: str, line: int, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_main_cf(text, "/srv/main.cf")
    assert message in err.value.message
    assert err.value.one_line().startswith(f"/srv/main.cf:{line}: ")


def test_orphan_continuation_is_a_warning_when_not_strict() -> None:
    cf = parse_main_cf("  orphan = 1\n    more\nmyhostname = x.example\n", strict=False)
    assert cf.names() == ["myhostname"] and len(cf.warnings) == 1


@pytest.mark.parametrize("value,message", [
    ("$", "empty macro name"),
    ("x $ y", "empty macro name"),
    ("${myhostname", "truncated macro reference"),
    ("${my-host}", "attribute name syntax error"),
    ("$smtpd_banner x", "unreasonable macro call nesting"),
    ("${{a} =~ {b} ? {x}}", "expected at"),
    ("${{3.x} <level {2} ? {x}}", "malformed compatibility level"),
    ("${myhostname?{x}:{y}junk}", "unexpected input"),
    ("${myhostname?{x} junk}", '":" expected'),
    ("${{a} == {b} junk}", '"?" or ":" expected'),
])
def test_expansion_errors_like_postfix(value: str, message: str, tmp_path: Path) -> None:
    text = f"myhostname = a.example.com\nsmtpd_banner = {value}\n"
    cf = parse_main_cf(text, "/srv/main.cf")
    with pytest.raises(ConfigError) as err:
        cf.get("smtpd_banner")
    assert message in err.value.message
    assert err.value.line == 2 and err.value.field == "smtpd_banner"
    (tmp_path / "main.cf").write_text(text)
    with pytest.raises(RuntimeError, match="macro processing error"):
        postconf(tmp_path, "-hx", "smtpd_banner")


def test_mutual_recursion_is_an_error() -> None:
    cf = parse_main_cf("mydomain = $myhostname\nmyhostname = x.$mydomain\n")
    with pytest.raises(ConfigError, match="unreasonable macro call nesting"):
        cf.get("myhostname")


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_main_cf(tmp_path)
    assert err.value.file == str(tmp_path / "main.cf")


def test_bad_inet_protocols_is_a_config_error() -> None:
    cf = parse_main_cf("inet_protocols = IPv4\n")
    with pytest.raises(ConfigError, match="unknown inet_protocols value"):
        cf.get("mynetworks")
    assert parse_main_cf("inet_protocols =\n").get("mynetworks") == ""
