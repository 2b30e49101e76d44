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
