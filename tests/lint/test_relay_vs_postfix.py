"""Lint's relay verdict agrees with real Postfix.

For each configuration a real Postfix instance runs on a loopback address (the lead's
postfix_factory), lint reads the very main.cf that instance runs, and swaks, from an untrusted
loopback source address, asks it to take a foreign recipient (stopping at RCPT, never DATA).
lint must report open-relay exactly when Postfix answers 250 to that RCPT.
"""

from __future__ import annotations

import subprocess

import pytest

from hardener.lint.runner import lint_path

GUARDED = "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination"

# name: (main.cf settings, extra files in the config dir (postmap'ed if hash), sender, recipient)
CASES = {
    "hardened": ({"smtpd_relay_restrictions": GUARDED}, {}, "a@sender.example", "v@victim.example"),
    "permit-first": ({"smtpd_relay_restrictions": "permit_mynetworks, permit, reject_unauth_destination"},
                     {}, "a@sender.example", "v@victim.example"),
    "forged-sender": ({"compatibility_level": "0", "smtpd_relay_restrictions": "",
                       "smtpd_recipient_restrictions": "permit_mynetworks, check_sender_access "
                       "hash:$config_directory/sender_access, reject_unauth_destination"},
                      {"sender_access": "partner.example.net OK\n"},
                      "anyone@partner.example.net", "v@victim.example"),
    "forged-sender-not-used": ({"compatibility_level": "0", "smtpd_relay_restrictions": "",
                                "smtpd_recipient_restrictions": "permit_mynetworks, check_sender_access "
                                "hash:$config_directory/sender_access, reject_unauth_destination"},
                               {"sender_access": "partner.example.net REJECT\n"},
                               "anyone@partner.example.net", "v@victim.example"),
    "tld-relay-domain": ({"smtpd_relay_restrictions": GUARDED, "relay_domains": "example.org, com"},
                         {}, "a@sender.example", "v@victim.com"),
    "catch-all-relay-domains": ({"smtpd_relay_restrictions": GUARDED,
                                 "relay_domains": "regexp:$config_directory/relay_domains"},
                                {"relay_domains": "/.*/ OK\n"}, "a@sender.example", "v@victim.example"),
    "client-list-saves": ({"smtpd_relay_restrictions": "permit, reject_unauth_destination",
                           "smtpd_client_restrictions": "permit_mynetworks, reject"},
                          {}, "a@sender.example", "v@victim.example"),
    "no-guard-anywhere": ({"smtpd_relay_restrictions": "", "smtpd_recipient_restrictions": ""},
                          {}, "a@sender.example", "v@victim.example"),
}


def _rcpt_accepted(address: str, port: int, source: str, sender: str, recipient: str) -> bool:
    """True when the server answers 2xx to RCPT TO (swaks quits after RCPT, no DATA)."""
    run = subprocess.run(["swaks", "--server", address, "--port", str(port), "--local-interface",
                          source, "--from", sender, "--to", recipient, "--quit-after", "RCPT",
                          "--timeout", "15", "--helo", "client.example"],
                         capture_output=True, text=True, timeout=60)
    lines = run.stdout.splitlines()
    for index, line in enumerate(lines):
        if line.startswith(" -> RCPT TO"):
            reply = next((l for l in lines[index + 1:] if l.startswith(("<-", "<**", "<~"))), "")
            return reply.startswith("<-  2")
    return False


@pytest.mark.parametrize("case", sorted(CASES))
def test_open_relay_verdict_matches_postfix(case: str, postfix_factory, loopback) -> None:
    settings, files, sender, recipient = CASES[case]
    instance = postfix_factory(settings, start=False)
    for name, text in files.items():
        (instance.config_dir / name).write_text(text)
        if "hash:$config_directory/" + name in " ".join(settings.values()):
            subprocess.run(["postmap", str(instance.config_dir / name)], check=True)
    instance.start()
    relayed = _rcpt_accepted(instance.address, instance.port, loopback.address(), sender, recipient)
    result = lint_path(instance.config_dir)
    flagged = [f.evidence for f in result.findings if f.check == "open-relay"]
    assert bool(flagged) == relayed, (case, relayed, flagged)
    if case == "no-guard-anywhere":
        assert "specify at least one working instance" in instance.maillog_text()
        assert any(f.check == "relay-restrictions" for f in result.findings)
