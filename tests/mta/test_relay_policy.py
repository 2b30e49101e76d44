"""relay_policy: Postfix trivial-rewrite resolution and the relay restrictions, as pure functions."""

from __future__ import annotations

import ipaddress

import pytest

from hardener.mta.smtpd.relay_policy import (FINAL, RELAY, PolicySettings, check_recipient, resolve)

S = PolicySettings(
    myhostname="mx.hardener.test", myorigin="mx.hardener.test", mydomain="hardener.test",
    mydestination=("mx.hardener.test", "localhost"), relay_domains=("relayed.example",),
    local_addresses=("127.0.0.1", "127.0.10.2"),
    mynetworks=(ipaddress.ip_network("127.0.0.1/32"),),
    relay_restrictions=("permit_mynetworks", "reject_unauth_destination"))
F = "foreign.example"


@pytest.mark.parametrize("address, final, routed", [
    (f"user@{F}", f"user@{F}", False),
    (f"user%{F}@mx.hardener.test", f"user@{F}", False),
    (f"user%{F}@[127.0.10.2]", f"user@{F}", False),
    (f"user@{F}@mx.hardener.test", f"user@{F}", False),       # also "user@foreign"@mx... internal
    (f"user@{F}@[127.0.10.2]", f"user@{F}", False),
    (f"user%{F}", f"user@{F}", False),
    (f"@mx.hardener.test:user@{F}", f"user@{F}", False),     # smtpd's rewrite strips the route
    (f"@a.example,@b.example:user@{F}", f"user@{F}", False),
    (f"{F}!user", f"user@{F}", False),
    (f"{F}!user@mx.hardener.test", f"user@{F}", False),
    ("a.example!b.example!user@mx.hardener.test", "b.example!user@a.example", True),
    (f"user%x@{F}", f"user%x@{F}", True),
    ("root", "root@mx.hardener.test", False),
    ("root@mx.hardener.test.", "root@mx.hardener.test", False),
    ("root@LOCALHOST", "root@LOCALHOST", False),
])
def test_resolve(address, final, routed):
    r = resolve(address, S)
    assert (r.address, r.routed) == (final, routed)


def test_classes():
    assert resolve("root@mx.hardener.test", S).klass == FINAL
    assert resolve("x@[127.0.10.2]", S).klass == FINAL
    assert resolve("x@[127.0.99.99]", S).klass != FINAL       # not one of our addresses
    assert resolve("x@relayed.example", S).klass == RELAY
    assert resolve("x@sub.relayed.example", S).klass == RELAY  # parent_domain_matches_subdomains
    assert resolve("x@bad_domain..example", S).error


def test_percent_hack_off_makes_local_form_routed():
    s = PolicySettings(**{**S.__dict__, "allow_percent_hack": False})
    r = resolve(f"user%{F}@mx.hardener.test", s)
    assert r.routed and check_recipient("127.0.9.9", f"user%{F}@mx.hardener.test", s).action == "reject"


@pytest.mark.parametrize("client, rcpt, action, code", [
    ("127.0.9.9", f"user@{F}", "reject", "554 5.7.1"),
    ("127.0.0.1", f"user@{F}", "permit", None),
    ("127.0.9.9", "root@mx.hardener.test", "permit", None),
    ("127.0.9.9", "x@relayed.example", "permit", None),
    ("127.0.9.9", f"x%{F}@relayed.example", "reject", "554 5.7.1"),  # routed: never relayed
    ("::ffff:127.0.0.1", f"user@{F}", "permit", None),
])
def test_check_recipient(client, rcpt, action, code):
    d = check_recipient(client, rcpt, S)
    assert d.action == action
    if code:
        assert d.reply.startswith(code) and d.reply.endswith("Relay access denied")


def test_defer_unauth_destination_and_extra_restrictions():
    s = PolicySettings(**{**S.__dict__, "relay_restrictions": (
        "permit_mynetworks", "defer_unauth_destination"),
        "recipient_restrictions": ("reject_unauth_pipelining",)})
    assert check_recipient("127.0.9.9", f"u@{F}", s).reply.startswith("454 4.7.1")
    seen = []
    assert check_recipient("127.0.9.9", "root@mx.hardener.test", s,
                           extra=lambda n: seen.append(n)).action == "permit"
    assert seen == ["reject_unauth_pipelining"]
