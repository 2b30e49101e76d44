"""hardener's AUTH replies against a real Postfix 3.7 with Cyrus SASL (sasldb, PLAIN and LOGIN), the
same exchanges sent to both, each from its own untrusted source address.

Postfix's texts after "authentication failed:" come from its SASL backend; with Dovecot they
would read differently. Where Cyrus is lenient hardener is strict, and those inputs are left out of
the comparison on purpose: Cyrus decodes base64 without padding ("AUTH PLAIN !!!" reads as an
incomplete step) and takes "=" (an empty initial response, RFC 4954) as "another step is needed";
hardener answers "bad protocol / cancel" to both (tests/mta/test_auth.py).
"""

from __future__ import annotations

import pytest

from tests.mta.auth_helpers import (PASSWORD, TlsClient, b64, cyrus_postfix, plain,
                                    start_sasl_mta, tls_settings)

HOSTNAME = "mx.hardener.test"

BATTERY: list[tuple[str, list[str]]] = [
    ("no mechanism", ["AUTH"]),
    ("good PLAIN", [f"AUTH PLAIN {plain('alice', PASSWORD)}"]),
    ("good PLAIN, then AUTH again", [f"AUTH PLAIN {plain('alice', PASSWORD)}",
                                     f"AUTH PLAIN {plain('alice', PASSWORD)}"]),
    ("wrong password", [f"AUTH PLAIN {plain('alice', 'wrong')}"]),
    ("unknown user", [f"AUTH PLAIN {plain('nobody', PASSWORD)}"]),
    ("acting for another user", [f"AUTH PLAIN {plain('alice', PASSWORD, 'bob')}"]),
    ("PLAIN without NULs", [f"AUTH PLAIN {b64('alice')}"]),
    ("PLAIN challenge, cancelled", ["AUTH PLAIN", "*"]),
    ("PLAIN challenge, not base64", ["AUTH PLAIN", "!!!!"]),
    ("PLAIN challenge, one NUL", ["AUTH PLAIN", b64("\0alice")]),
    ("PLAIN challenge, good", ["AUTH PLAIN", plain("alice", PASSWORD)]),
    ("LOGIN cancelled at the password", ["AUTH LOGIN", b64("alice"), "*"]),
    ("LOGIN with initial response, wrong", [f"AUTH LOGIN {b64('alice')}", b64("wrong")]),
    ("login, lower case, good", ["AUTH login", b64("alice"), b64(PASSWORD)]),
    ("unknown mechanism", ["AUTH FOO"]),
    ("ANONYMOUS", ["AUTH ANONYMOUS"]),
    ("during a mail transaction", ["MAIL FROM:<alice@client.example>",
                                   f"AUTH PLAIN {plain('alice', PASSWORD)}"]),
    ("too many words", [f"AUTH PLAIN {plain('alice', PASSWORD)} extra"]),
]


def _session(address: str, port: int, source: str, lines: list[str]) -> list[str]:
    with TlsClient(address, port, source=source) as c:
        c.ehlo_tls()
        return [c.cmd(line)[1] for line in lines]


@pytest.fixture
def servers(postfix_factory, mta_factory, cert_factory):
    cert = cert_factory.valid(HOSTNAME)
    postfix = cyrus_postfix(postfix_factory, cert, HOSTNAME)
    ours = start_sasl_mta(mta_factory, cert, {"myhostname": HOSTNAME,
                                              "smtpd_client_event_limit_exceptions": ""})
    return postfix, ours


def test_auth_replies_match_postfix(servers, loopback):
    postfix, ours = servers
    theirs_all, ours_all = {}, {}
    for name, lines in BATTERY:
        theirs_all[name] = _session(postfix.address, postfix.port, loopback.address(), lines)
        ours_all[name] = _session(ours.address, ours.port, loopback.address(), lines)
    assert ours_all == theirs_all


def test_auth_offer_and_refusal_before_tls_match_postfix(servers, loopback):
    results = []
    for server in servers:
        with TlsClient(server.address, server.port, source=loopback.address()) as c:
            assert c.greeting()[0] == 220
            before = c.cmd("EHLO client.example")[1]
            refused = c.cmd(f"AUTH PLAIN {plain('alice', PASSWORD)}")[1]
            assert c.starttls()[0] == 220
            after = c.cmd("EHLO client.example")[1]
        results.append(([x for x in before.splitlines() if "AUTH" in x], refused,
                        [x for x in after.splitlines() if "AUTH" in x]))
    assert results[0] == results[1] == ([], "503 5.5.1 Error: authentication not enabled",
                                        ["250-AUTH PLAIN LOGIN"])


def test_mandatory_tls_replies_match_postfix(postfix_factory, mta_factory, cert_factory,
                                             loopback):
    cert = cert_factory.valid(HOSTNAME)
    encrypt = {**tls_settings(cert), "smtpd_tls_security_level": "encrypt",
               "disable_vrfy_command": "no"}
    postfix = postfix_factory(encrypt)
    ours = mta_factory(encrypt)
    lines = ["MAIL FROM:<a@client.example>", "RCPT TO:<b@client.example>", "DATA", "VRFY root",
             "RSET", "NOOP", f"AUTH PLAIN {plain('alice', PASSWORD)}"]
    replies = []
    for server in (postfix, ours):
        with TlsClient(server.address, server.port, source=loopback.address()) as c:
            assert c.greeting()[0] == 220
            assert "STARTTLS" in c.cmd("EHLO client.example")[1]
            replies.append([c.cmd(line)[1] for line in lines])
    assert replies[1] == replies[0]
    assert replies[0][0] == "530 5.7.0 Must issue a STARTTLS command first"
