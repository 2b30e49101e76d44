"""Postfix TLS protocol lists (hardener.postfix.tls_protocols): every form postconf(5) and
tls_misc.c accept. The same cases run against a real Postfix in test_tls_protocols_postfix.py."""

from __future__ import annotations

import pytest

from hardener.postfix.tls_protocols import (
    InvalidProtocolList,
    client_protocols,
    parse_protocols,
    server_protocols,
    weak,
)

ALL = ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")


@pytest.mark.parametrize("value, accepted", [
    ("", ALL),                                           # empty: all the library can do
    (">=TLSv1", ALL),                                    # Postfix 3.6+ default
    (">=TLSv1.2", ("TLSv1.2", "TLSv1.3")),
    ("<=TLSv1.1", ("TLSv1", "TLSv1.1")),
    (">=TLSv1.1 <=TLSv1.2", ("TLSv1.1", "TLSv1.2")),
    (">=TLSv1, <=TLSv1.3", ALL),
    ("TLSv1.2 TLSv1.3", ("TLSv1.2", "TLSv1.3")),         # inclusion list
    ("TLSv1.2:TLSv1.3", ("TLSv1.2", "TLSv1.3")),         # colons
    ("tlsv1.2,TLSV1.3", ("TLSv1.2", "TLSv1.3")),         # any case, commas
    ("!SSLv2, !SSLv3", ALL),                             # legacy exclusions
    ("!SSLv2 !SSLv3 !TLSv1 !TLSv1.1", ("TLSv1.2", "TLSv1.3")),
    ("!TLSv1.1", ("TLSv1", "TLSv1.2", "TLSv1.3")),       # a hole: the server accepts both sides
    (">=TLSv1 !TLSv1.2", ("TLSv1", "TLSv1.1", "TLSv1.3")),
    ("TLSv1 TLSv1.3", ("TLSv1", "TLSv1.3")),
    (">=TLSv1.2 >=TLSv1", ALL),                          # the last floor wins, not the highest
    (">=TLSv1 >=TLSv1.2", ("TLSv1.2", "TLSv1.3")),
    (">=0x0303", ("TLSv1.2", "TLSv1.3")),                # hexadecimal versions
    (">=303", ("TLSv1.2", "TLSv1.3")),
    ("<=302", ("TLSv1", "TLSv1.1")),
    (">=0X0302", ("TLSv1.1", "TLSv1.2", "TLSv1.3")),
    (">=None", ALL), (">=0", ALL),                       # 0 resets the bound
    (">=0x0305", ALL), (">=1", ALL), (">=abc", ALL),     # numbers OpenSSL refuses: no bound
    ("<=0x0305", ALL),
    (">= TLSv1.2", ("TLSv1.2",)),                        # ">=" alone is ">=0"; TLSv1.2 is included
    (">=SSLv3", ALL),                                    # SSLv3 is compiled out of OpenSSL 3
    ("SSLv3", ()),
    ("TLSv1.2 >=TLSv1.3", ()),
    (">=TLSv1.3 <=TLSv1.2", ()),
    ("TLSv1.2 !TLSv1.2", ()),
])
def test_server_protocols(value: str, accepted: tuple[str, ...]) -> None:
    assert server_protocols(value) == accepted


@pytest.mark.parametrize("value, element", [
    ("TLSv9", "TLSv9"),
    (">=TLSv1.2, TLSv9", "TLSv9"),
    (">=TLSv9", ">=TLSv9"),          # not a name, not hexadecimal
    (">=SSLv2", ">=SSLv2"),          # no SSLv2 version number
    ("!0303", "!0303"),              # numbers only after >= or <=
    ("!", "!"),
    ("!!TLSv1", "!!TLSv1"),
    (">=0x", ">=0x"),
    (">=-1", ">=-1"),
    (">=100000000", ">=100000000"),  # more than INT_MAX
    ("=>TLSv1.2", "=>TLSv1.2"),
])
def test_lists_postfix_refuses(value: str, element: str) -> None:
    with pytest.raises(InvalidProtocolList) as info:
        server_protocols(value)
    assert info.value.element == element
    with pytest.raises(InvalidProtocolList):
        client_protocols(value)


@pytest.mark.parametrize("value, offered", [
    ("!TLSv1.2", ("TLSv1", "TLSv1.1")),          # an OpenSSL client uses the lowest run only
    ("TLSv1 TLSv1.3", ("TLSv1",)),
    (">=TLSv1 !TLSv1.1", ("TLSv1",)),
    ("!TLSv1", ("TLSv1.1", "TLSv1.2", "TLSv1.3")),
    (">=TLSv1.2", ("TLSv1.2", "TLSv1.3")),
    ("", ALL),
])
def test_client_protocols(value: str, offered: tuple[str, ...]) -> None:
    assert client_protocols(value) == offered


def test_parse_keeps_the_bounds_and_folds_inclusions_into_exclusions() -> None:
    parsed = parse_protocols("TLSv1.2 TLSv1.3 <=0x304 >=TLSv1.2")
    assert parsed.excluded == {"SSLv2", "SSLv3", "TLSv1", "TLSv1.1"}
    assert (parsed.floor, parsed.ceiling) == (0x0303, 0x0304)


def test_weak() -> None:
    assert weak(("TLSv1", "TLSv1.2", "TLSv1.1")) == ["TLSv1", "TLSv1.1"]
    assert weak(("TLSv1.2", "TLSv1.3")) == []
