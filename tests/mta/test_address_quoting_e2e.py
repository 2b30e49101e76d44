"""Addresses through the whole daemon, compared with a real Postfix (issue 7 §3, SMTP parameter
injection at the next hop).

The same MAIL FROM / RCPT TO arguments go to a hardener MTA and to a Postfix, each relaying to its
own smtp-sink; smtp-sink records the exact arguments it read, and the two next hops must have read
the same ones: quoted local parts stay quoted, nothing turns into a parameter. Addresses neither can
represent get the same 5xx from both. A bounce of a quoted recipient carries quoted DSN fields.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from tests.fixtures.mta import SmtpClient
from tests.fixtures.relay import NO_TLS, mta_with_rejecting_next_hop
from tests.fixtures.unprivileged import as_user, skip_unless_nobody_can_run

OK_SENDER = b"<s@sender.example>"
OK_RCPT = b"<ok@remote.example>"

# (MAIL FROM argument, RCPT TO argument): both servers accept these
ACCEPTED = [
    (OK_SENDER, b'<"x@evil.example> NOTIFY=SUCCESS ORCPT=rfc822;y"@example.net>'),
    (b'<"x@evil.example> SIZE=1 BODY=8BITMIME"@example.net>', OK_RCPT),
    (OK_SENDER, b'<"a b"@example.net>'),
    (OK_SENDER, b'<"a\\"b"@example.net>'),
    (OK_SENDER, b'<"a\\\\b"@example.net>'),
    (OK_SENDER, b'<"a.b"@example.net>'),
    (OK_SENDER, b'<".ab"@example.net>'),
    (OK_SENDER, b"<a..b@example.net>"),
    (OK_SENDER, b"<a.@example.net>"),
    (OK_SENDER, b"<@a.example,@b.example:u@example.net>"),
    (OK_SENDER, b'<@a.example:"x y"@example.net>'),
    (OK_SENDER, b'<""@example.net>'),
    (OK_SENDER, b"<@example.net>"),
    (OK_SENDER, b"<a@b@example.net>"),
    (OK_SENDER, b"<a\\ b@example.net>"),
    (OK_SENDER, b'<"\\a"@example.net>'),
    (OK_SENDER, b"<o'hara+x=y/z@example.net>"),
    (b"<>", OK_RCPT),
    (b'<"">', OK_RCPT),
    (b'<"a b"@sender.example>', OK_RCPT),
]

# (command, argument): both servers refuse these with the same reply
REFUSED = [
    ("RCPT", b"<a b@example.net>"),
    ("RCPT", b'<"a\x00b"@example.net>'),
    ("RCPT", b"<a\x80b@example.net>"),
    ("RCPT", b"<user@>"),
    ("RCPT", b"<user@b!c.example>"),
    ("RCPT", b"<user@[192.0.2.1 x]>"),
    ("RCPT", b"<a;b@example.net>"),
    ("RCPT", b"<a<b@example.net>"),
    ("RCPT", b'<a"b@example.net>'),
    ("RCPT", b"<a@example.net"),
    ("RCPT", b"<user@" + b"b" * 300 + b".example>"),
    ("RCPT", b"<u@192.0.2.1>"),                  # a numeric domain is not a host name
    ("RCPT", b"<user@-a.example>"),
    ("RCPT", b"<user@a-.example>"),
    ("MAIL", b"<user@>"),
    ("MAIL", b"<user@b c.example>"),
    ("MAIL", b"<user@b!c.example>"),
    ("MAIL", b"<u@192.0.2.1>"),
]


def _session(server, mail: bytes, rcpt: bytes, subject: str | None) -> tuple[str, str]:
    """One transaction from the trusted 127.0.0.1: (MAIL reply, RCPT reply); sends a message
    with `subject` when both were accepted."""
    with SmtpClient(server.address, server.port, source="127.0.0.1") as c:
        c.greeting()
        c.cmd("EHLO client.test")
        mail_reply = c.cmd(b"MAIL FROM:" + mail)[1]
        rcpt_reply = c.cmd(b"RCPT TO:" + rcpt)[1] if mail_reply.startswith("250") else ""
        if subject and rcpt_reply.startswith("250"):
            assert c.cmd("DATA")[0] == 354
            assert c.cmd(f"Subject: {subject}\r\n\r\nx\r\n.")[0] == 250
        c.cmd("QUIT")
    return mail_reply, rcpt_reply


def _recorded(sink, count: int) -> dict[str, list[str]]:
    """Subject -> the X-Mail-Args / X-Rcpt-Args lines smtp-sink recorded for that message, with
    the ORCPT parameter Postfix adds for a DSN-capable next hop left out."""
    assert sink.wait_for_messages(count, timeout=60) == count
    out = {}
    for path in sink.message_files():
        text = path.read_text(errors="replace")
        subject = re.search(r"^Subject: (.*)$", text, re.MULTILINE).group(1)
        args = re.findall(r"^X-(?:Mail|Rcpt)-Args: .*$", text, re.MULTILINE)
        out[subject] = [re.sub(r"> ORCPT=\S+$", ">", line) for line in args]
    return out


def _log_addresses(read_log, count: int) -> list[str]:
    """The to=<...> values of the `count` delivery lines (sent status) of a maillog, waiting up to
    10 s for the last ones to be written."""
    deadline = time.monotonic() + 10
    while True:
        found = sorted(re.findall(r" to=<(.*?)>, relay=.*status=sent", read_log()))
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_next_hop_reads_the_same_arguments_as_from_postfix(mta_factory, postfix_factory,
                                                           smtp_sink_factory):
    hardener_sink, postfix_sink = smtp_sink_factory(), smtp_sink_factory()
    mta = mta_factory({**NO_TLS, "relayhost": f"[{hardener_sink.address}]:{hardener_sink.port}"})
    postfix = postfix_factory({**NO_TLS,
                               "relayhost": f"[{postfix_sink.address}]:{postfix_sink.port}"})
    for server in (mta, postfix):
        for n, (mail, rcpt) in enumerate(ACCEPTED):
            replies = _session(server, mail, rcpt, f"case-{n}")
            assert replies == ("250 2.1.0 Ok", "250 2.1.5 Ok"), (server, mail, rcpt, replies)
    ours, theirs = _recorded(hardener_sink, len(ACCEPTED)), _recorded(postfix_sink, len(ACCEPTED))
    assert ours == theirs
    # the injection stayed inside the quoted local part
    assert ours["case-0"] == [
        "X-Mail-Args: <s@sender.example>",
        'X-Rcpt-Args: <"x@evil.example> NOTIFY=SUCCESS ORCPT=rfc822;y"@example.net>']
    assert ours["case-1"][0] == 'X-Mail-Args: <"x@evil.example> SIZE=1 BODY=8BITMIME"@example.net>'
    # the maillog shows the external (quoted) form, as Postfix logs it
    ours_logged = _log_addresses(mta.log_text, len(ACCEPTED))
    assert ours_logged == _log_addresses(postfix.maillog_text, len(ACCEPTED))
    assert '"x@evil.example> NOTIFY=SUCCESS ORCPT=rfc822;y"@example.net' in ours_logged


def test_unrepresentable_addresses_get_postfixs_5xx(mta_factory, postfix_factory):
    mta = mta_factory(NO_TLS)
    postfix = postfix_factory(NO_TLS)
    for command, arg in REFUSED:
        mail, rcpt = (arg, OK_RCPT) if command == "MAIL" else (OK_SENDER, arg)
        ours = _session(mta, mail, rcpt, None)
        theirs = _session(postfix, mail, rcpt, None)
        assert ours == theirs, (arg, ours, theirs)
        assert (ours[0] if command == "MAIL" else ours[1])[:1] == "5", (arg, ours)
    # Deliberately stricter than Postfix: a control character inside quotes has no RFC 5321 form
    # (qtextSMTP is %d32-126); Postfix 3.7 accepts and relays it, hardener refuses it.
    arg = b'<"a\x01b"@example.net>'
    assert _session(postfix, OK_SENDER, arg, None)[1] == "250 2.1.5 Ok"
    assert _session(mta, OK_SENDER, arg, None)[1] == "501 5.1.3 Bad recipient address syntax"


def test_bounce_of_a_quoted_recipient_has_quoted_dsn_fields(mta_factory, smtp_sink_factory):
    mta, rejecting, home = mta_with_rejecting_next_hop(mta_factory, smtp_sink_factory)
    with SmtpClient(mta.address, mta.port, source="127.0.0.1") as c:
        c.greeting()
        c.cmd("EHLO client.test")
        assert c.cmd('MAIL FROM:<"a b"@sender.example>')[0] == 250
        assert c.cmd('RCPT TO:<"x> NOTIFY=NEVER y"@remote.example> '
                     'ORCPT=rfc822;"x>+20NOTIFY+3DNEVER+20y"@remote.example')[0] == 250
        assert c.cmd("DATA")[0] == 354
        assert c.cmd("Subject: quoted\r\n\r\nx\r\n.")[0] == 250
        c.cmd("QUIT")
    assert home.wait_for_messages(1, timeout=30) == 1, mta.log_text()[-2000:]
    dsn = home.message_files()[0].read_text()
    assert "X-Mail-Args: <>" in dsn
    assert 'X-Rcpt-Args: <"a b"@sender.example>' in dsn
    rejected = rejecting.message_files()
    assert rejected == []
    for line in ('To: "a b"@sender.example',
                 'X-Postfix-Sender: rfc822; "a b"@sender.example',
                 'Final-Recipient: rfc822; "x> NOTIFY=NEVER y"@remote.example',
                 'Original-Recipient: rfc822;"x> NOTIFY=NEVER y"@remote.example',
                 '<"x> NOTIFY=NEVER y"@remote.example>: host '):
        assert line in dsn, line
    assert 'to=<"x> NOTIFY=NEVER y"@remote.example>' in mta.log_text()


def test_sendmail_recipients_are_quoted_once(mta_factory, smtp_sink_factory):
    skip_unless_nobody_can_run()
    sink = smtp_sink_factory()
    mta = mta_factory({**NO_TLS, "relayhost": f"[{sink.address}]:{sink.port}"})
    cmd = as_user([str(Path(sys.executable).parent / "hardener"), "sendmail", "-C",
                   str(mta.config_dir), "-f", '"a b"@sender.example', '"x y"@remote.example'])
    done = subprocess.run(cmd, input=b"Subject: cron\n\nbackup ok\n", capture_output=True,
                          check=False, timeout=30, cwd="/")
    assert done.returncode == 0, done.stderr
    assert sink.wait_for_messages(1, timeout=30) == 1, mta.log_text()[-2000:]
    text = sink.message_files()[0].read_text()
    assert 'X-Mail-Args: <"a b"@sender.example>' in text
    assert 'X-Rcpt-Args: <"x y"@remote.example>' in text


def test_reject_log_lines_show_the_quoted_form(mta_factory, postfix_factory, loopback):
    """NOQUEUE: reject: ... from=<...> to=<...>: the external form, as Postfix logs it; the reply
    itself shows the unquoted form, as Postfix's does."""
    relay = {**NO_TLS, "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination"}
    mta = mta_factory(relay)
    postfix = postfix_factory(relay)
    source = loopback.address()          # untrusted: relaying is refused
    replies, logged = [], []
    for server, read_log in ((mta, mta.log_text), (postfix, postfix.maillog_text)):
        with SmtpClient(server.address, server.port, source=source) as c:
            c.greeting()
            c.cmd("EHLO client.test")
            assert c.cmd('MAIL FROM:<"s x"@sender.example>')[0] == 250
            replies.append(c.cmd('RCPT TO:<"x> NOTIFY=NEVER"@foreign.example>')[1])
            c.cmd("QUIT")
        deadline = time.monotonic() + 10
        while "reject: RCPT" not in read_log() and time.monotonic() < deadline:
            time.sleep(0.1)
        found = re.search(r"reject: RCPT .*?; (from=<.*> to=<.*>) proto=", read_log())
        logged.append(found.group(1))
    assert replies[0] == replies[1] == \
        "554 5.7.1 <x> NOTIFY=NEVER@foreign.example>: Relay access denied"
    assert logged[0] == logged[1] == \
        'from=<"s x"@sender.example> to=<"x> NOTIFY=NEVER"@foreign.example>'
