"""smtpd against real clients on loopback: Postfix semantics for the hardened parameters."""

from __future__ import annotations

import re
import subprocess
import time


from tests.fixtures.mta import SmtpClient

LEAKS = re.compile(r"aiosmtpd|python|postfix|hardener|\d+\.\d+\.\d+", re.I)


def session(mta, source: str | None = None) -> SmtpClient:
    c = SmtpClient(mta.address, mta.port, source=source)
    assert c.greeting()[0] == 220
    return c


def send_message(c: SmtpClient, body: bytes = b"Subject: t\r\n\r\nhello\r\n",
                 rcpt: str = "root@mx.hardener.test") -> tuple[int, str]:
    assert c.cmd("MAIL FROM:<sender@client.example>")[0] == 250
    assert c.cmd(f"RCPT TO:<{rcpt}>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send_raw(body + b".\r\n")
    return c.read_reply()


def test_banner_ehlo_help_and_errors_never_name_the_software(mta_factory, loopback):
    mta = mta_factory()
    with SmtpClient(mta.address, mta.port, source=loopback.address()) as c:
        code, banner = c.greeting()
        assert banner == "220 mx.hardener.test ESMTP"
        replies = [c.cmd(x)[1] for x in ("HELP", "EHLO client.example", "FOO", "MAIL FROM:<",
                                         "VRFY root", "EXPN root", "RCPT TO:<x@y.example>")]
        ehlo = replies[1].splitlines()
        assert "250-PIPELINING" in ehlo and "250-SIZE 10240000" in ehlo
        assert not any("VRFY" in line for line in ehlo)   # disable_vrfy_command = yes
        for reply in [banner] + replies:
            text = re.sub(r"(?m)^\d{3}[ -](\d\.\d{1,3}\.\d{1,3} )?", "", reply)
            assert not LEAKS.search(text.replace("mx.hardener.test", "")), reply
        assert replies[0].startswith("500 5.5.2")   # as Postfix 3.7 (test_smtpd_limits.py)
        assert replies[4] == "502 5.5.1 VRFY command is disabled"
        assert replies[5].startswith("502 ")


def test_helo_required_unknown_local_user_and_accepted_mail(mta_factory, loopback):
    mta = mta_factory()
    with session(mta, loopback.address()) as c:
        assert c.cmd("MAIL FROM:<a@client.example>")[1] == "503 5.5.1 Error: send HELO/EHLO first"
        c.cmd("EHLO client.example")
        assert c.cmd("MAIL FROM:<a@client.example>")[0] == 250
        code, text = c.cmd("RCPT TO:<nosuchuser@mx.hardener.test>")
        assert text == ("550 5.1.1 <nosuchuser@mx.hardener.test>: Recipient address rejected: "
                        "User unknown in local recipient table")
        assert c.cmd("RCPT TO:<postmaster@mx.hardener.test>")[0] == 250   # alias
        assert c.cmd("RCPT TO:<root@mx.hardener.test>")[0] == 250         # passwd
        assert c.cmd("DATA")[0] == 354
        c.send_raw(b"Subject: t\r\nMessage-ID: <t1@client.example>\r\n\r\nhi\r\n.\r\n")
        code, text = c.read_reply()
        assert code == 250 and text.startswith("250 2.0.0 Ok: queued as ")
    mta.wait_for_log("message-id=<t1@client.example>")


def test_message_size_limit(mta_factory):
    mta = mta_factory({"message_size_limit": "100000"})
    with session(mta) as c:
        assert "250-SIZE 100000" in c.cmd("EHLO client.example")[1]
        assert c.cmd("MAIL FROM:<a@client.example> SIZE=100001")[1] == \
            "552 5.3.4 Message size exceeds fixed limit"
        code, text = send_message(c, b"Subject: big\r\n\r\n" + b"z" * 998 + b"\r\n" * 0
                                  + (b"y" * 998 + b"\r\n") * 200)
        assert text == "552 5.3.4 Error: message file too big"
        assert c.cmd("RSET")[0] == 250             # the session is still in step
        assert send_message(c)[0] == 250
    assert "reject: END-OF-MESSAGE from" in mta.log_text()


def test_recipient_limit_and_line_length(mta_factory):
    mta = mta_factory({"smtpd_recipient_limit": "2", "line_length_limit": "1000"})
    with session(mta) as c:
        c.cmd("EHLO client.example")
        c.cmd("MAIL FROM:<a@client.example>")
        assert c.cmd("RCPT TO:<root@mx.hardener.test>")[0] == 250
        assert c.cmd("RCPT TO:<postmaster@mx.hardener.test>")[0] == 250
        assert c.cmd("RCPT TO:<root@mx.hardener.test>")[1] == "452 4.5.3 Error: too many recipients"
        assert c.cmd("NOOP " + "x" * 2000)[1] == "500 5.5.2 Error: line too long"
        assert c.cmd("NOOP " + "x" * 200000)[1] == "500 5.5.2 Error: line too long"
        assert c.cmd("NOOP")[0] == 250


def test_unauthenticated_pipelining_is_rejected(mta_factory):
    mta = mta_factory({"smtpd_data_restrictions": "reject_unauth_pipelining",
                       "smtpd_recipient_restrictions": "reject_unauth_pipelining"})
    with session(mta) as c:
        c.cmd("EHLO client.example")
        c.cmd("MAIL FROM:<a@client.example>")
        c.cmd("RCPT TO:<root@mx.hardener.test>")
        c.send_raw(b"DATA\r\nSubject: early\r\n\r\nbody\r\n.\r\n")
        code, text = c.read_reply()
        assert code == 503 and "Improper use of SMTP command pipelining" in text
    with session(mta) as c:       # HELO (not ESMTP) client pipelining MAIL and RCPT
        c.cmd("HELO client.example")
        c.send_raw(b"MAIL FROM:<a@client.example>\r\nRCPT TO:<root@mx.hardener.test>\r\n")
        assert c.read_reply()[0] == 250
        # input was pending after MAIL before EHLO: the session is marked (as in Postfix)
        assert "Improper use of SMTP command pipelining" in c.read_reply()[1]
        assert c.cmd("DATA")[1] == "554 5.5.1 Error: no valid recipients"
    with session(mta) as c:
        c.cmd("HELO client.example")
        c.send_raw(b"MAIL FROM:<a@client.example>\r\nRCPT TO:<root@mx.hardener.test>\r\nNOOP\r\n")
        assert c.read_reply()[0] == 250
        assert c.read_reply()[0] == 503
    assert "improper command pipelining after DATA" in mta.log_text()


def test_header_sent_as_command_ends_session(mta_factory):
    mta = mta_factory()
    with session(mta) as c:
        assert c.cmd("Subject: hello")[1] == "221 2.7.0 Error: I can break rules, too. Goodbye."
        assert c.closed_by_peer()


def test_connection_count_and_rate_limits(mta_factory, loopback):
    mta = mta_factory({"smtpd_client_connection_count_limit": "2",
                       "smtpd_client_event_limit_exceptions": "127.0.0.1/32"})
    src = loopback.address()
    held = [session(mta, src), session(mta, src)]
    with SmtpClient(mta.address, mta.port, source=src) as c:
        code, text = c.read_reply()
        assert code == 421 and "too many connections" in text
        assert c.closed_by_peer()
    trusted = [session(mta, "127.0.0.1") for _ in range(3)]   # exception list: not limited
    for c in held + trusted:
        c.close()

    mta2 = mta_factory({"smtpd_client_connection_rate_limit": "3",
                        "smtpd_client_event_limit_exceptions": ""})
    src = loopback.address()
    for _ in range(3):
        with session(mta2, src) as c:
            c.cmd("QUIT")
    with SmtpClient(mta2.address, mta2.port, source=src) as c:
        assert c.read_reply()[0] == 421
    assert "Connection rate limit exceeded" in mta2.log_text()


def test_idle_and_session_timeouts(mta_factory):
    mta = mta_factory({"smtpd_timeout": "1s"})
    with session(mta) as c:
        c.sock.settimeout(30)
        code, text = c.read_reply()
        assert text == "421 4.4.2 mx.hardener.test Error: timeout exceeded"
        assert c.closed_by_peer()
    mta2 = mta_factory({"hardener_smtpd_session_limit": "2"})
    with session(mta2) as c:
        deadline = time.monotonic() + 30
        code = 250
        while code == 250 and time.monotonic() < deadline:
            time.sleep(0.2)
            try:
                code = c.cmd("NOOP")[0]
            except ConnectionError:
                break
        assert code == 421 or c.closed_by_peer()
    assert "session time limit exceeded" in mta2.log_text()


def test_disk_full_gives_451_and_loses_nothing(mta_factory):
    """A real full disk (a 3 MB tmpfs on the queue): two sessions both pass MAIL's free-space
    check (queue_minfree: 1.5 x message_size_limit must be free), then send 1.8 MB each; the
    second to finish cannot be written: 451, no file left behind, the session goes on."""
    mta = mta_factory({"message_size_limit": "1900000"}, start=False)
    mta.queue_dir.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mta.queue_dir)],
                   check=True)
    body = b"Subject: big\r\n\r\n" + (b"q" * 998 + b"\r\n") * 1800
    try:
        mta.start()
        with session(mta) as a, session(mta) as b:
            for c in (a, b):
                c.cmd("EHLO client.example")
                assert c.cmd("MAIL FROM:<sender@client.example>")[0] == 250
                assert c.cmd("RCPT TO:<root@mx.hardener.test>")[0] == 250
                assert c.cmd("DATA")[0] == 354
            a.send_raw(body)                       # written to a's queue file, not ended yet
            # a's content must be on the disk before b's arrives (cleanup writes as data comes,
            # keeping the last chunks in memory until the end of data)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and sum(
                    f.stat().st_size for f in (mta.queue_dir / "tmp").iterdir()) < len(body) - 2**17:
                time.sleep(0.05)
            b.send_raw(body + b".\r\n")
            assert b.read_reply()[1] == "451 4.3.0 Error: queue file write error"
            assert list((mta.queue_dir / "incoming").iterdir()) == []
            a.send_raw(b".\r\n")
            assert a.read_reply()[0] == 250
            assert len(list((mta.queue_dir / "tmp").iterdir())) == 0
            assert b.cmd("RSET")[0] == 250        # the session goes on
    finally:
        mta.stop()
        subprocess.run(["umount", str(mta.queue_dir)], check=False)


def test_bare_newline_reject_mode(mta_factory):
    mta = mta_factory({"smtpd_forbid_bare_newline": "reject",
                       "smtpd_forbid_bare_newline_exclusions": ""})
    with session(mta) as c:
        c.cmd("EHLO client.example")
        assert send_message(c, b"Subject: t\r\n\r\nbare\nline\r\n")[1] == \
            "550 5.5.2 Error: bare <LF> received"
        assert send_message(c)[0] == 250


def test_starttls_may_and_state_reset(mta_factory, cert_factory):
    import ssl

    cert = cert_factory.valid("mx.hardener.test")
    mta = mta_factory({"smtpd_tls_security_level": "may",
                       "smtpd_tls_cert_file": str(cert.chain),
                       "smtpd_tls_key_file": str(cert.key)})
    with session(mta) as c:
        assert "250-STARTTLS" in c.cmd("EHLO client.example")[1]
        # plaintext pipelined after STARTTLS must not be executed inside TLS (injection)
        c.send_raw(b"STARTTLS\r\nRSET\r\n")
        assert c.read_reply()[0] == 220
        ctx = ssl.create_default_context(cafile=str(cert.ca))
        c.sock = ctx.wrap_socket(c.sock, server_hostname="mx.hardener.test")
        c.buf = b""
        ehlo = c.cmd("EHLO client.example")[1]
        assert ehlo.startswith("250-mx.hardener.test")   # no reply to the injected RSET
        assert "STARTTLS" not in ehlo
        assert send_message(c)[0] == 250
        assert c.cmd("QUIT")[0] == 221


def test_null_client_client_restrictions_match_postfix(mta_factory, postfix_factory, loopback):
    settings = {"smtpd_client_restrictions": "permit_mynetworks, reject",
                "myhostname": "mx.hardener.test", "mynetworks": "127.0.0.1/32"}
    replies = []
    for server in (postfix_factory(settings), mta_factory(settings)):
        with SmtpClient(server.address, server.port, source=loopback.address()) as c:
            c.greeting()
            c.cmd("EHLO client.example")
            c.cmd("MAIL FROM:<a@client.example>")
            code, text = c.cmd("RCPT TO:<root@mx.hardener.test>")
            replies.append(re.sub(r"\[127\.[0-9.]+\]", "[ADDR]", text))
    assert replies[0] == replies[1]
    assert replies[1] == "554 5.7.1 <unknown[ADDR]>: Client host rejected: Access denied"


def test_large_message_streams_intact_to_the_next_hop(mta_factory, smtp_sink_factory):
    """A 3 MB message with dot-stuffed lines and a long line arrives byte-exact at the next hop."""
    sink = smtp_sink_factory()
    mta = mta_factory({"relayhost": f"[{sink.address}]:{sink.port}"})
    lines = [b"Subject: stream test", b"Message-ID: <stream@client.example>", b""]
    for i in range(30000):
        lines.append(b"." * (i % 3) + b"line %d of the body, some text to fill it up" % i)
    lines.append(b"L" * 5000)
    body = b"\r\n".join(lines) + b"\r\n"
    stuffed = b"\r\n".join(b"." + x if x.startswith(b".") else x for x in lines) + b"\r\n"
    with SmtpClient(mta.address, mta.port, source="127.0.0.1") as c:   # mynetworks: relayed
        c.greeting()
        c.cmd("EHLO client.example")
        code, _ = send_message(c, stuffed, rcpt="someone@far.example")
        assert code == 250
    assert sink.wait_for_messages(1) == 1
    dumped = sink.message_files()[0].read_bytes()
    # smtp-sink writes its own X- headers first and a blank line after the message
    assert b"\n" + body.replace(b"\r\n", b"\n") in dumped.replace(b"\r\n", b"\n")


def test_client_gone_during_data_leaves_nothing(mta_factory):
    mta = mta_factory()
    with session(mta) as c:
        c.cmd("EHLO client.example")
        c.cmd("MAIL FROM:<a@client.example>")
        c.cmd("RCPT TO:<root@mx.hardener.test>")
        assert c.cmd("DATA")[0] == 354
        c.send_raw(b"Subject: gone\r\n\r\n" + b"z" * 998 + b"\r\n" * 300)
    mta.wait_for_log("lost connection after DATA")
    assert list((mta.queue_dir / "tmp").iterdir()) == []
    assert list((mta.queue_dir / "incoming").iterdir()) == []


def test_default_banner_names_no_software(mta_factory):
    mta = mta_factory(start=False)
    main_cf = mta.config_dir / "main.cf"
    main_cf.write_text("".join(line for line in main_cf.read_text().splitlines(keepends=True)
                               if not line.startswith("smtpd_banner")))
    mta.start()
    with SmtpClient(mta.address, mta.port) as c:
        assert c.greeting()[1] == "220 mx.hardener.test ESMTP"


def test_garbage_never_breaks_the_session_or_the_daemon(mta_factory):
    mta = mta_factory({"smtpd_helo_restrictions": "reject_invalid_helo_hostname",
                       "smtpd_hard_error_limit": "100"})
    junk = [b"EHLO \xc3\x28\xa0\xa1", b"MAIL FROM:<\xff@x>", b"HELO \xff\x00",
            b"RCPT TO:<a\x00b@mx.hardener.test>", b"MAIL FROM:<unbalanced", b"RCPT TO:<\"x@y>",
            b"VRFY \xff", b"X" * 5000, b"Q\x00" * 10, b"RCPT TO:<root@mx.hardener.test> FOO=\xff"]
    with session(mta) as c:
        for line in junk:
            code, _ = c.cmd(line)
            assert 200 <= code < 600
        c.cmd("EHLO bad_name!.example")
        c.cmd("MAIL FROM:<\xe9@client.example>".encode("utf-8"))  # latin-1 gets 500 bad UTF-8
        code, text = c.cmd("RCPT TO:<root@mx.hardener.test>")
        assert code == 501 and "Helo command rejected" in text
        assert c.cmd("NOOP")[0] == 250
    for line in (b"\xff\xfe\x00HELO", b"\x00" * 10):   # not a command at all: Postfix hangs up
        with session(mta) as c:
            assert c.cmd(line)[0] == 221 and c.closed_by_peer()
    with session(mta) as c:        # the daemon is still there
        assert c.cmd("NOOP")[0] == 250
    assert "internal error" not in mta.log_text()


def test_real_postfix_client_pipelining_is_accepted(mta_factory, postfix_factory,
                                                    smtp_sink_factory):
    """Postfix's smtp client pipelines MAIL/RCPT/DATA; reject_unauth_pipelining must let it in."""
    sink = smtp_sink_factory()
    mta = mta_factory({"relayhost": f"[{sink.address}]:{sink.port}",
                       "smtpd_data_restrictions": "reject_unauth_pipelining",
                       "smtpd_recipient_restrictions": "reject_unauth_pipelining",
                       "smtpd_forbid_unauth_pipelining": "yes",
                       "mynetworks": "127.0.0.0/8"})
    postfix = postfix_factory({"relayhost": f"[{mta.address}]:{mta.port}",
                               "mynetworks": "127.0.0.1/32"})
    with SmtpClient(postfix.address, postfix.port, source="127.0.0.1") as c:
        c.greeting()
        c.cmd("EHLO client.example")
        assert send_message(c, rcpt="someone@far.example")[0] == 250
    assert sink.wait_for_messages(1, timeout=60) == 1, mta.log_text()[-2000:]
    assert "improper command pipelining" not in mta.log_text()
