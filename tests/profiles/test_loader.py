"""Loading profiles (`extends:`), merging profile < --vars FILE < --set, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from hardener.errors import InputError
from hardener.profiles import builtin_names, load_profile, resolve
from hardener.profiles.keys import KEYS


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_builtin_profiles_load() -> None:
    assert builtin_names() == ["mx-gateway", "null-client", "outbound-relay"]
    for name in builtin_names():
        profile = load_profile(name)
        assert profile.description and profile.required
        assert "myhostname" in profile.required


def test_extends_merges_settings_required_and_deviations(tmp_path: Path) -> None:
    child = _write(tmp_path / "site.yaml",
                   "extends: mx-gateway\n"
                   "description: our MX\n"
                   "required: [admin_address]\n"
                   "settings:\n  message_size_limit: 20480000\n  relay_domains: example.com\n")
    profile = load_profile(str(child))
    assert profile.chain == ("mx-gateway", "site")
    assert profile.settings["message_size_limit"] == "20480000"
    assert profile.settings["inet_interfaces"] == ("all",)
    assert set(profile.required) == {"myhostname", "relay_domains", "internal_nexthop", "admin_address"}
    assert "smtpd_client_restrictions" in profile.deviations


def test_extends_relative_path_and_loop(tmp_path: Path) -> None:
    _write(tmp_path / "a.yaml", "extends: b.yaml\n")
    _write(tmp_path / "b.yaml", "extends: a.yaml\n")
    with pytest.raises(InputError, match="extends loop"):
        load_profile(str(tmp_path / "a.yaml"))


@pytest.mark.parametrize("body, where, reason", [
    ("settings:\n  myhostname: mx1.example.com\n  nosuch: 1\n", ":3: nosuch:", "unknown key"),
    ("settings:\n  message_size_limit: [1, 2]\n", ":2: message_size_limit:", "expected a string"),
    ("settings:\n  myhostname: mx1\n", ":2: myhostname:", "not a fully qualified host name"),
    ("settings:\n  mynetworks: 10.0.0.0/8 [::ffff:1.2.3.4]/96\n", ":2: mynetworks:", "host bits"),
    ("settings:\n  myhostname: \"mx1.example.com\\nmynetworks = 0.0.0.0/0\"\n", ":2: myhostname:",
     "newline"),
    ("settings:\n  smtpd_banner: '$myhostname ESMTP '\n", ":2: smtpd_banner:", "trailing whitespace"),
    ("settings:\n  relayhost:\n", ":2: relayhost:", "has no value"),
    ("setings:\n  myhostname: a.example.com\n", ":1: setings:", "unknown profile field"),
    ("settings: [1]\n", ":1: settings:", "expected a mapping"),
    ("settings:\n  myhostname: a: b\n", ":2:", "not valid YAML"),
    ("required: [nope]\n", ":1: required:", "unknown key 'nope'"),
    ("deviations:\n  inet_interfaces: \"x\\ny\"\n", ":2: deviations.inet_interfaces:", "newline"),
])
def test_profile_errors_are_one_line_with_file_line_and_key(tmp_path: Path, body: str, where: str,
                                                            reason: str) -> None:
    path = _write(tmp_path / "bad.yaml", body)
    with pytest.raises(InputError) as err:
        load_profile(str(path))
    line = err.value.one_line()
    assert "\n" not in line
    assert line.startswith(str(path)), line
    assert where in line and reason in line, line


def test_merge_order_profile_then_vars_then_set(tmp_path: Path) -> None:
    vars_file = _write(tmp_path / "vars.yaml",
                       "myhostname: from-vars.example.com\nrelayhost: '[vars.example.com]:25'\n"
                       "message_size_limit: 5000000\n")
    settings = resolve(load_profile("null-client"), vars_file, ["relayhost=[set.example.com]:587"])
    assert settings["myhostname"] == "from-vars.example.com"
    assert settings["relayhost"] == "[set.example.com]:587"
    assert settings["message_size_limit"] == "5000000"
    assert settings["inet_interfaces"] == ("loopback-only",)      # from the profile
    assert settings["smtpd_banner"] == "$myhostname ESMTP"        # key default
    assert settings["admin_address"] == "postmaster@example.com"  # derived from myhostname
    assert set(settings.values) == {k.name for k in KEYS}


def test_set_forms() -> None:
    settings = resolve(load_profile("outbound-relay"), None, [
        "myhostname=relay.example.com", "mynetworks=127.0.0.0/8 [::1]/128", "relayhost=",
        "smtpd_listen=[::1]:2525", "smtpd_sasl_auth_enable=false"])
    assert settings["mynetworks"] == ("127.0.0.0/8", "[::1]/128")
    assert settings["relayhost"] == ""
    assert settings["smtpd_sasl_auth_enable"] == "no"
    with pytest.raises(InputError, match="expected KEY=VALUE"):
        resolve(load_profile("null-client"), None, ["myhostname"])


@pytest.mark.parametrize("sets, field, reason", [
    (["internal_nexthop=[10.0.0.1]:25"], "--set internal_nexthop", "needs relay_domains"),
    (["relay_domains=example.com"], "--set relay_domains", "needs internal_nexthop"),
    (["smtp_tls_security_level=verify"], "--set smtp_tls_security_level", "smtp_tls_CAfile"),
    (["smtpd_listen=192.0.2.1:25"], "--set smtpd_listen", "beyond loopback"),
    (["smtpd_tls_cert_file="], "--set smtpd_tls_cert_file", "TLS needs"),
    (["relay_domains=$mydomain", "internal_nexthop=[10.0.0.1]"], "--set relay_domains", "write the domains out"),
    (["relay_domains=example.com", "internal_nexthop=[10.0.0.1]", "mydestination=example.com"],
     "--set relay_domains", "also in mydestination"),
])
def test_cross_checks_name_the_flag(sets: list[str], field: str, reason: str) -> None:
    base = ["myhostname=a.example.com", "relayhost=[smtp.example.com]"]
    with pytest.raises(InputError) as err:
        resolve(load_profile("null-client"), None, base + sets)
    assert err.value.field == field and reason in err.value.message


def test_vars_file_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="mapping"):
        resolve(load_profile("null-client"), _write(tmp_path / "v.yaml", "- a\n- b\n"))
    with pytest.raises(InputError, match="no such file"):
        resolve(load_profile("null-client"), tmp_path / "missing.yaml")


def test_overrides_mapping_sits_between_vars_and_set() -> None:
    settings = resolve(load_profile("null-client"), None, ["relayhost=[b.example.com]"],
                       overrides={"myhostname": "gw1.example.com", "relayhost": "[a.example.com]"},
                       overrides_label="inventory.yaml hosts.gw1.vars")
    assert settings["myhostname"] == "gw1.example.com" and settings["relayhost"] == "[b.example.com]"
    with pytest.raises(InputError) as err:
        resolve(load_profile("null-client"), None, overrides={"myhostname": "gw1"},
                overrides_label="inventory.yaml hosts.gw1.vars")
    assert err.value.one_line().startswith("inventory.yaml hosts.gw1.vars: myhostname: ")
