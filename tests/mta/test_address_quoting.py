"""address_form: Postfix's internal (unquoted) and external (RFC 5321 quoted) address forms, and
every place an address is written (SMTP client, DSN, queue file, local delivery headers).

The SMTP client against smtp-sink and aiosmtpd is in test_delivery_smtp.py; the whole daemon
against smtp-sink and a real Postfix in test_address_quoting_e2e.py.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import io
import re

import pytest

from hardener.mta.address_form import (
    AddressError,
    BadUtf8Error,
    externalize,
    internalize,
    is_dot_string,
    printable_external,
)
from hardener.mta.bounce import FailedRecipient, build_dsn, original_recipient_field
from hardener.mta.delivery.local import LocalAgent, LocalSettings
from hardener.mta.delivery.result import BOUNCED, SENT, DeliveryRequest, Destination
from hardener.mta.queue.file import (
    Envelope,
    QueueFileError,
    Recipient,
    encode_value,
    format_envelope,
    parse_bytes,
)
from hardener.mta.smtpd.address import parse_path_arg, path_error_reply

INJECTION = "x@evil.example> NOTIFY=SUCCESS ORCPT=rfc822;y@example.net"


@pytest.mark.parametrize("internal, external", [
    ("user@example.net", "user@example.net"),
    ("first.last@example.net", "first.last@example.net"),
    ("o'hara+tag=x/y{z}|~!#$%&*^`@example.net", "o'hara+tag=x/y{z}|~!#$%&*^`@example.net"),
    ("x y@example.net", '"x y"@example.net'),
    (INJECTION, '"x@evil.example> NOTIFY=SUCCESS ORCPT=rfc822;y"@example.net'),
    ('a"b@example.net', '"a\\"b"@example.net'),
    ("a\\b@example.net", '"a\\\\b"@example.net'),
    ("@example.net", '""@example.net'),                 # empty local part
    (".a@example.net", '".a"@example.net'),             # leading dot
    ("a.@example.net", '"a."@example.net'),             # trailing dot
    ("a..b@example.net", '"a..b"@example.net'),         # consecutive dots
    ("a@b@example.net", '"a@b"@example.net'),           # '@' in the local part: split at the last
    ("a<b>@example.net", '"a<b>"@example.net'),
    ("a(b),c;d:e[f]@example.net", '"a(b),c;d:e[f]"@example.net'),
    ("postmaster", "postmaster"),                       # no domain
    ("x y", '"x y"'),
    ("u@[192.0.2.1]", "u@[192.0.2.1]"),
    ("u@[IPv6:2001:db8::1]", "u@[IPv6:2001:db8::1]"),
    ("u@example.net.", "u@example.net."),
    ("", ""),                                           # the null sender: the caller writes <>
    ("j\u00f6rg@b\u00fccher.example", "j\u00f6rg@b\u00fccher.example"),  # UTF-8 (SMTPUTF8)
])
def test_externalize_quotes_what_is_not_a_dot_string(internal, external):
    assert externalize(internal) == external
    # and the external form reads back as the same internal form (smtpd's parser)
    assert internalize(external) == internal


@pytest.mark.parametrize("internal", [
    "a\rb@example.net", "a\nb@example.net", "a\x00b@example.net", "a\tb@example.net",
    "a\x7fb@example.net", "a\x85b@example.net", "a\u2028b@example.net",
    "a\udcffb@example.net",                             # a byte that was not valid UTF-8
    "user@exa mple.net", "user@example.net>", "user@", "user@b!c.example", "user@1.2.3.4",
    "user@[192.0.2.1 x]", "user@[" + "1" * 20 + "]", "user@-a.example", "user@" + "a" * 64 + ".net",
    "user@" + ".".join(["abcdefgh"] * 40),
])
def test_externalize_refuses_what_has_no_rfc5321_form(internal):
    with pytest.raises(AddressError):
        externalize(internal)
    shown = printable_external(internal)        # logs and headers still get one printable token
    assert shown.isprintable() and "\n" not in shown and "\r" not in shown


def test_non_ascii_needs_smtputf8():
    assert externalize("j\u00f6rg@example.net", utf8=True) == "j\u00f6rg@example.net"
    with pytest.raises(AddressError, match="SMTPUTF8"):
        externalize("j\u00f6rg@example.net", utf8=False)
    assert not is_dot_string("j\u00f6rg", utf8=False)


@pytest.mark.parametrize("external, internal", [
    ('"x@evil.example> NOTIFY=SUCCESS ORCPT=rfc822;y"@example.net', INJECTION),
    ('"a b"@example.net', "a b@example.net"),
    ('"a.b"@example.net', "a.b@example.net"),
    ('"\\a"@example.net', "a@example.net"),
    ("a\\ b@example.net", "a b@example.net"),           # Postfix accepts a backslash pair unquoted
    ("a\\@b@example.net", "a@b@example.net"),
    ("a@b@example.net", "a@b@example.net"),             # unquoted '@': Postfix accepts it too
    (".a@example.net", ".a@example.net"),
    ("a..b@example.net", "a..b@example.net"),
    ("@a.example,@b.example:u@example.net", "u@example.net"),   # source route dropped
    ('@a.example:"x y"@example.net', "x y@example.net"),
    ('""@example.net', "@example.net"),
    ("@example.net", "@example.net"),
    ('""', ""),
    ("", ""),
])
def test_internalize_like_postfix_smtpd(external, internal):
    assert internalize(external) == internal


@pytest.mark.parametrize("external, why", [
    ("a b@example.net", "space outside quotes"),
    ('a"b@example.net', "unbalanced quotes"),
    ("a;b@example.net", "';' outside quotes"),
    ("a<b@example.net", "'<' outside quotes"),
    ("a(comment)@example.net", "'(' outside quotes"),
    ("a\\", "backslash at the end"),
    ('"a\x01b"@example.net', "control character"),
    ('"a\x00b"@example.net', "control character"),
    ("user@", "empty domain"),
    ("user@b!c.example", "not a host name"),
    ("user@[192.0.2.1 x]", "address literal"),
    ("user@" + "b" * 300 + ".example", "longer than 255"),
    ("a" * 600 + "@example.net", "longer than 512"),
])
def test_internalize_refuses(external, why):
    with pytest.raises(AddressError, match=why.replace("(", r"\(")):
        internalize(external)


def test_internalize_flags_bad_utf8():
    text = b"a\xffb@example.net".decode("utf-8", "surrogateescape")   # as smtpd decodes a line
    with pytest.raises(BadUtf8Error):
        internalize(text)


def test_every_local_part_byte_round_trips_or_is_refused():
    """Whatever a quoted local part holds, the external form reads back to the same address and
    never has a space or '>' outside quotes (so it is one token inside <...>)."""
    for code in list(range(0x180)) + [0x2028, 0xFEFF, 0xDCFF]:
        local = f"a{chr(code)}b"
        try:
            ext = externalize(local + "@example.net")
        except AddressError:
            assert not chr(code).isprintable() or code == 0x7F or 0xD800 <= code <= 0xDFFF
            continue
        assert internalize(ext) == local + "@example.net"
        line = f"RCPT TO:<{ext}>"
        assert parse_path_arg(line[5:], "TO:").address == local + "@example.net"
        assert parse_path_arg(line[5:], "TO:").params == {}


@pytest.mark.parametrize("arg, reply", [
    ("FROM:<a b@example.net>", "501 5.1.7 Bad sender address syntax"),
    ("TO:<a b@example.net>", "501 5.1.3 Bad recipient address syntax"),
    ('TO:<"a\x00b"@example.net>', "501 5.1.3 Bad recipient address syntax"),
    ("TO:<user@>", "501 5.1.3 Bad recipient address syntax"),
    ("TO:<a@example.net", "501 5.1.3 Bad recipient address syntax"),
    ("TO:<a\udc80b@example.net>", "500 5.5.2 Error: bad UTF-8 syntax"),
    ("TO:", "501 5.5.4 Syntax: RCPT TO:<address>"),
    ("FROM x", "501 5.5.4 Syntax: MAIL FROM:<address>"),
])
def test_path_error_replies_are_postfix_words(arg, reply):
    keyword = "FROM:" if arg.startswith("FROM") else "TO:"
    assert parse_path_arg(arg, keyword) is None
    assert path_error_reply(arg, keyword) == reply


def test_parameters_stay_parameters():
    parsed = parse_path_arg('TO:<"x@evil.example> NOTIFY=SUCCESS"@example.net> NOTIFY=FAILURE',
                            "TO:")
    assert parsed.address == "x@evil.example> NOTIFY=SUCCESS@example.net"
    assert parsed.params == {"NOTIFY": "FAILURE"}
    bare = parse_path_arg('FROM:"a b"@example.net SIZE=10', "FROM:")   # no <>: Postfix accepts
    assert (bare.address, bare.params) == ("a b@example.net", {"SIZE": "10"})


# -- the queue file: the internal form, percent-encoded, cannot be confused by any byte -----------

def test_queue_file_round_trips_every_byte_in_an_address():
    nasty = "".join(chr(c) for c in range(1, 0x80)) + "\u00e9\udcff"
    env = Envelope(queue_id="0123456789ABCDEF0", arrival=1.0, sender=f"s{nasty}@example.org",
                   recipients=[Recipient(f"r{nasty}@example.net", f"rfc822;{nasty}", "FAILURE"),
                               Recipient("recipient: forged@example.net\nsender: x")],
                   size=3)
    block = format_envelope(env)
    assert block.count(b"\n") == len(block.split(b"\n\n")[0].split(b"\n")) + 1
    assert block.isascii() and b"forged@example.net\n" not in block
    parsed, content = parse_bytes(block + b"abc")
    assert parsed.sender == env.sender and parsed.recipients == env.recipients
    assert content == b"abc"


def test_queue_file_refuses_a_value_that_is_not_text():
    with pytest.raises(QueueFileError):
        encode_value("a\ud800b")


# -- the DSN: addresses in external form, nothing can add a field ---------------------------------

def test_dsn_fields_are_quoted():
    env = Envelope(queue_id="0123456789ABCDEF0", arrival=1700000000.0, sender="a b@example.org",
                   recipients=[Recipient(INJECTION, "rfc822;\"x+20y\"@example.net")])
    failed = [FailedRecipient(INJECTION, "5.1.1", "host mx[192.0.2.1]:25 said: 550 no",
                              "smtp; 550 no", "mx.example.net", "rfc822;\"x+20y\"@example.net"),
              FailedRecipient("c\rd\nFinal-Recipient: rfc822; forged@x@example.net", "5.1.3",
                              "bad", orcpt="rfc822;bad+0Aorcpt")]
    raw = build_dsn(env, failed, b"Subject: x\n", myhostname="mx.example.com", now=1700000100.0)
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["To"] == '"a b"@example.org'
    notice, status, _ = msg.iter_parts()
    assert status.get_content_type() == "message/delivery-status"
    assert '<"x@evil.example> NOTIFY=SUCCESS ORCPT=rfc822;y"@example.net>: host' in \
        notice.get_content()
    text = raw.decode()        # as written (the email package would refold long fields)
    assert 'X-Postfix-Sender: rfc822; "a b"@example.org' in text
    assert 'Final-Recipient: rfc822; "x@evil.example> NOTIFY=SUCCESS ORCPT=rfc822;y"@example.net' \
        in text
    assert 'Original-Recipient: rfc822;"x y"@example.net' in text      # xtext decoded
    assert 'Final-Recipient: rfc822; "c?d?Final-Recipient: rfc822; forged@x"@example.net' in text
    assert len(re.findall("^Final-Recipient:", text, re.MULTILINE)) == 2        # one per recipient
    assert len(re.findall("^Original-Recipient:", text, re.MULTILINE)) == 1
    assert "\nFinal-Recipient: rfc822; forged" not in text


@pytest.mark.parametrize("orcpt, field", [
    ("rfc822;bob@example.net", "rfc822;bob@example.net"),
    ("rfc822;\"x+20y\"@example.net", "rfc822;\"x y\"@example.net"),
    ("rfc822;a+0Db@example.net", None),        # a CR once decoded
    ("rfc822;a+zzb", None),
    ("no-type", None),
    ("rfc822;", None),
])
def test_original_recipient_field(orcpt, field):
    assert original_recipient_field(orcpt) == field


# -- local delivery: Return-Path and Delivered-To in external form --------------------------------

def test_local_delivery_headers_are_quoted(tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir(mode=0o700)
    agent = LocalAgent(LocalSettings(spool_dir=spool, aliases={"a b": ["admin"]},
                                     local_domains=lambda d: not d or d == "mx.example",
                                     require_known_user=False, myhostname="mx.example"))
    body = b"Subject: t\n\nhello\n"
    req = DeliveryRequest("0123456789ABCDEF0", "x\ny@example.org", ["a b@mx.example"],
                          lambda: io.BytesIO(body), len(body), 0.0)
    report = asyncio.run(agent.deliver(Destination("local", ""), req))
    assert [r.status for r in report.results] == [SENT]
    [delivered] = list((spool / "admin" / "Maildir" / "new").iterdir())
    assert delivered.read_text().startswith(
        'Return-Path: <"x?y"@example.org>\nDelivered-To: "a b"@mx.example\nSubject: t\n')


def test_alias_targets_are_read_in_external_form(tmp_path):
    forwarded: list[list[str]] = []

    async def resubmit(sender, recipients, req):
        forwarded.append(recipients)
        return "0123456789ABCDEF1"

    spool = tmp_path / "spool"
    spool.mkdir(mode=0o700)
    agent = LocalAgent(LocalSettings(spool_dir=spool,
                                     aliases={"ops": ['"x y"@remote.example'],
                                              "bad": ["a b@remote.example"]},
                                     local_domains=lambda d: not d or d == "mx.example",
                                     require_known_user=False), resubmit)
    req = DeliveryRequest("0123456789ABCDEF0", "s@example.org",
                          ["ops@mx.example", "bad@mx.example"],
                          lambda: io.BytesIO(b"x\n"), 2, 0.0)
    report = asyncio.run(agent.deliver(Destination("local", ""), req))
    assert [r.status for r in report.results] == [SENT, BOUNCED]
    assert forwarded == [["x y@remote.example"]]       # internal form in the queue
    assert "space outside quotes" in report.results[1].reply
