"""The relay decision for the 16-form relay battery equals a real Postfix's with the same main.cf.

Both servers get the same relay settings; the battery runs from an untrusted source address (nothing
may be relayed) and from the mynetworks address 127.0.0.1 (everything is relayed). Only RCPT is sent.
"""

from __future__ import annotations

import pytest

from hardener.audit.checks.relay import FORMS
from tests.fixtures.mta import SmtpClient

FOREIGN = "relay-target.example"
COMMON = {
    "myhostname": "mx.hardener.test",
    "mydomain": "hardener.test",
    "myorigin": "$myhostname",
    "mydestination": "$myhostname, localhost",
    "mynetworks": "127.0.0.1/32",
    "relay_domains": "",
    "inet_protocols": "ipv4",
    "compatibility_level": "3.6",
    "smtpd_helo_required": "no",
}
RESTRICTIONS = [
    "permit_mynetworks, reject_unauth_destination",
    "permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination",
]


def battery(address: str, port: int, server_name: str, source: str | None) -> list[tuple[str, int]]:
    """(form name, RCPT reply class 2/4/5) for each form, one session per form."""
    results = []
    for form in FORMS:
        sender, rcpt = form.render("relaytest", FOREIGN, server_name, f"[{address}]")
        with SmtpClient(address, port, source=source) as c:
            assert c.greeting()[0] == 220
            assert c.cmd("EHLO client.example")[0] == 250
            assert c.cmd(f"MAIL FROM:<{sender}>")[0] == 250, form.name
            code, text = c.cmd(f"RCPT TO:<{rcpt}>")
            results.append((form.name, code // 100))
            c.cmd("RSET")
            c.cmd("QUIT")
    return results


@pytest.mark.parametrize("restrictions", RESTRICTIONS)
def test_relay_battery_matches_postfix(restrictions, postfix_factory, mta_factory, loopback):
    settings = dict(COMMON, smtpd_relay_restrictions=restrictions)
    postfix = postfix_factory(settings)
    mta = mta_factory(settings)
    untrusted = loopback.address()
    for source, expect_relay in ((untrusted, False), ("127.0.0.1", True)):
        theirs = battery(postfix.address, postfix.port, "mx.hardener.test", source)
        ours = battery(mta.address, mta.port, "mx.hardener.test", source)
        assert [(n, c == 2) for n, c in ours] == [(n, c == 2) for n, c in theirs]
        assert all((c == 2) == expect_relay for _, c in ours), ours
        # defer_unauth_destination answers 4xx, reject_unauth_destination 5xx: same class as Postfix
        assert ours == theirs


@pytest.mark.parametrize("extra", [
    {"relay_domains": FOREIGN},
    {"relay_domains": FOREIGN, "allow_percent_hack": "no", "swap_bangpath": "no"},
    {"mydestination": f"$myhostname, localhost, {FOREIGN}"},
])
def test_routing_forms_match_postfix_when_destination_is_ours(extra, postfix_factory, mta_factory,
                                                              loopback):
    """With the target domain in relay_domains (or local), Postfix relays some forms and refuses
    the sender-routed ones; hardener's trivial-rewrite emulation must make the same choices."""
    settings = dict(COMMON, smtpd_relay_restrictions="permit_mynetworks, reject_unauth_destination",
                    local_recipient_maps="", **extra)
    postfix = postfix_factory(settings)
    mta = mta_factory(settings)
    untrusted = loopback.address()
    theirs = battery(postfix.address, postfix.port, "mx.hardener.test", untrusted)
    ours = battery(mta.address, mta.port, "mx.hardener.test", untrusted)
    assert ours == theirs


def auth_battery(address: str, port: int, source: str, authenticate: bool) -> list[tuple[str, int]]:
    """The relay battery over STARTTLS, after AUTH PLAIN as alice when `authenticate`."""
    from tests.mta.auth_helpers import PASSWORD, TlsClient, plain

    results = []
    for form in FORMS:
        sender, rcpt = form.render("relaytest", FOREIGN, "mx.hardener.test", f"[{address}]")
        with TlsClient(address, port, source=source) as c:
            c.ehlo_tls()
            if authenticate:
                assert c.cmd(f"AUTH PLAIN {plain('alice', PASSWORD)}")[0] == 235
            assert c.cmd(f"MAIL FROM:<{sender}>")[0] == 250, form.name
            code, _ = c.cmd(f"RCPT TO:<{rcpt}>")
            results.append((form.name, code // 100))
            c.cmd("QUIT")
    return results


@pytest.mark.parametrize("client_restrictions", ["", "permit_sasl_authenticated, reject"])
def test_permit_sasl_authenticated_matches_postfix(client_restrictions, postfix_factory,
                                                   mta_factory, cert_factory, loopback):
    """permit_sasl_authenticated in the relay (and client) restrictions: an authenticated client
    relays every form, an unauthenticated one none, exactly as a real Postfix with Cyrus SASL."""
    from tests.mta.auth_helpers import cyrus_postfix, start_sasl_mta

    cert = cert_factory.valid("mx.hardener.test")
    settings = dict(COMMON, smtpd_client_restrictions=client_restrictions,
                    smtpd_relay_restrictions="permit_mynetworks, permit_sasl_authenticated, "
                                             "reject_unauth_destination")
    postfix = cyrus_postfix(postfix_factory, cert, "mx.hardener.test", settings)
    mta = start_sasl_mta(mta_factory, cert, settings)
    untrusted = loopback.address()
    for authenticate in (True, False):
        theirs = auth_battery(postfix.address, postfix.port, untrusted, authenticate)
        ours = auth_battery(mta.address, mta.port, untrusted, authenticate)
        assert ours == theirs
        assert all((c == 2) == authenticate for _, c in ours), ours
