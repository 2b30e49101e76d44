"""Value types of profile keys: what they accept, normalize and refuse (with a reason)."""

from __future__ import annotations

import pytest

from hardener.profiles import values as v


@pytest.mark.parametrize("text, reason", [
    ("a.example.com\nmynetworks = 0.0.0.0/0", "newline"),
    ("a.example.com\r", "carriage return"),
    ("a.example.com\0", "NUL"),
    ("a.example.com\x1b", "control character"),
    (" a.example.com", "leading or trailing whitespace"),
    ("a.example.com\t", "control character"),
    ("a.example.com ", "leading or trailing whitespace"),
    ("#comment", "starts with '#'"),
])
def test_injection_is_refused(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        v.check_injection(text)


@pytest.mark.parametrize("name", ["mx1.example.com", "a-b.example.co.uk", "example.com."])
def test_fqdn_accepts(name: str) -> None:
    assert v.parse_fqdn(name) == name


@pytest.mark.parametrize("name", ["localhost", "mx1", "-a.example.com", "a..example.com", "a_b.example.com",
                                  "1.2.3.4", "mx1.example.com;", "a" * 64 + ".example.com", ""])
def test_fqdn_refuses(name: str) -> None:
    with pytest.raises(ValueError, match="fully qualified"):
        v.parse_fqdn(name)


def test_network_list_normalizes_postfix_syntax() -> None:
    assert v.parse_network_list("127.0.0.0/8 [::1]/128, 10.1.2.3 [2001:db8::]/32") == \
        ("127.0.0.0/8", "[::1]/128", "10.1.2.3/32", "[2001:db8::]/32")
    assert v.parse_network_list(["192.0.2.0/24", "[::1]"]) == ("192.0.2.0/24", "[::1]/128")
    assert v.parse_network_list("[::ffff:127.0.0.0]/104") == ("[::ffff:127.0.0.0]/104",)


@pytest.mark.parametrize("entry, reason", [
    ("10.0.0.1/8", "host bits set"),
    ("::1/128", "in brackets"),
    ("[::1/128]", "Postfix syntax"),
    ("300.1.1.1", "not a valid IPv4"),
    ("10.0.0.0/33", "not a valid IPv4"),
    ("[2001:db8::]/129", "not a valid IPv6"),
    ("example.com", "not an IP network"),
    ("[::ffff:]/104", "IPv6"),
    ("hash:/etc/postfix/network_table", "tables are not allowed"),
])
def test_network_refuses(entry: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        v.parse_network_list(entry)


def test_network_list_must_not_be_empty() -> None:
    with pytest.raises(ValueError, match="at least one"):
        v.parse_network_list("")


@pytest.mark.parametrize("hop", ["[smtp.example.com]:587", "smtp.example.com", "[10.1.2.3]:25",
                                 "[ipv6:2001:db8::1]:25", "relay.example.com:2525"])
def test_nexthop_accepts(hop: str) -> None:
    assert v.parse_nexthop(hop) == hop


@pytest.mark.parametrize("hop", ["[smtp]:587", "[smtp.example.com]:0", "[smtp.example.com]:99999",
                                 "smtp.example.com:25:25", "[ipv6:zz]:25", "[a b.example.com]"])
def test_nexthop_refuses(hop: str) -> None:
    with pytest.raises(ValueError):
        v.parse_nexthop(hop)


@pytest.mark.parametrize("listen", ["smtp", "2525", "127.0.0.2:2525", "[::1]:25", "192.0.2.1:smtp"])
def test_listen_accepts(listen: str) -> None:
    assert v.parse_listen(listen) == listen


@pytest.mark.parametrize("listen", ["0", "70000", "mail.example.com:25", "[127.0.0.1]:25", "1.2.3:25"])
def test_listen_refuses(listen: str) -> None:
    with pytest.raises(ValueError):
        v.parse_listen(listen)


@pytest.mark.parametrize("banner, ok", [
    ("$myhostname ESMTP", True), ("${myhostname} ESMTP ready", True), ("mx1.example.com ESMTP", True),
    ("$myhostname ESMTP $mail_name", False), ("$myhostname ESMTP Postfix (Debian/GNU)", False),
    ("${mail_version}", False), ("ESMTP ready", False),
])
def test_banner(banner: str, ok: bool) -> None:
    if ok:
        assert v.parse_banner(banner) == banner
    else:
        with pytest.raises(ValueError):
            v.parse_banner(banner)


def test_scalars_refuse_lists_and_booleans() -> None:
    with pytest.raises(ValueError, match="got a list"):
        v.parse_fqdn(["a.example.com"])
    with pytest.raises(ValueError, match="boolean"):
        v.parse_fqdn(True)
    assert v.parse_bool(True) == "yes" and v.parse_bool("no") == "no"
    with pytest.raises(ValueError):
        v.parse_bool("maybe")
    assert v.parse_positive_int(10240000) == "10240000"
    with pytest.raises(ValueError):
        v.parse_positive_int("10M")


def test_domain_list_and_restrictions() -> None:
    assert v.parse_domain_list("example.com, .sub.example.org $mydomain localhost") == \
        ("example.com", ".sub.example.org", "$mydomain", "localhost")
    with pytest.raises(ValueError):
        v.parse_domain_list("example")
    assert v.parse_restrictions("permit_mynetworks, reject") == ("permit_mynetworks", "reject")
    with pytest.raises(ValueError):
        v.parse_restrictions("permit_mynetworks; reject")


def test_interfaces_and_tls_floor() -> None:
    assert v.parse_interfaces("loopback-only") == ("loopback-only",)
    assert v.parse_interfaces("127.0.0.1 ::1") == ("127.0.0.1", "::1")
    with pytest.raises(ValueError):
        v.parse_interfaces("all 127.0.0.1")
    with pytest.raises(ValueError, match="weaker"):
        v.protocol_floor(">=TLSv1")
