"""smtpd's replies equal a real Postfix's for the same main.cf and the same commands."""

from __future__ import annotations

from tests.fixtures.mta import SmtpClient

SETTINGS = {
    "myhostname": "mx.hardener.test", "mydomain": "hardener.test",
    "mydestination": "$myhostname, localhost", "mynetworks": "127.0.0.1/32",
    "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
    "smtpd_helo_required": "yes", "disable_vrfy_command": "yes",
    "message_size_limit": "100000", "smtpd_recipient_limit": "2",
    "compatibility_level": "3.6", "inet_protocols": "ipv4",
}
SCRIPT = [
    "MAIL FROM:<a@client.example>",          # before HELO
    "EHLO client.example",
    "RCPT TO:<root@mx.hardener.test>",       # before MAIL
    "DATA",                                  # before RCPT... and before MAIL
    "VRFY root",
    "MAIL FROM:<a@client.example> SIZE=100001",
    "MAIL FROM:<a@client.example> SIZE=99",
    "MAIL FROM:<b@client.example>",          # nested
    "RCPT TO:<user@foreign.example>",        # relay
    "RCPT TO:<nosuchuser@mx.hardener.test>",
    "RCPT TO:<root@mx.hardener.test>",
    "RCPT TO:<postmaster@localhost>",
    "RCPT TO:<root@localhost>",              # over smtpd_recipient_limit
    "RSET",
    "NOOP",
    "QUIT",
]


def run(address: str, port: int, source: str) -> list[tuple[str, str]]:
    result = []
    with SmtpClient(address, port, source=source) as c:
        c.greeting()
        for line in SCRIPT:
            code, text = c.cmd(line)
            result.append((line, text if not line.startswith("EHLO") else str(code)))
    return result


def test_replies_equal_postfix(postfix_factory, mta_factory, loopback):
    postfix = postfix_factory(SETTINGS)
    mta = mta_factory(SETTINGS)
    source = loopback.address()
    theirs = run(postfix.address, postfix.port, source)
    ours = run(mta.address, mta.port, source)
    assert len(ours) == len(SCRIPT) and any("Relay access denied" in t for _, t in ours)
    for (line, their), (_, our) in zip(theirs, ours):
        assert our == their, f"{line}: ours {our!r}, Postfix {their!r}"
