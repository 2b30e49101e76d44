"""SMTP AUTH through the real daemon: swaks and a raw client over STARTTLS, users written by the real
`hardener mta passwd`, mail relayed to Postfix's smtp-sink.

Timing: the failure delay is checked from below only (a reply cannot come before its delay)."""

from __future__ import annotations

import time

from tests.mta.auth_helpers import (PASSWORD, b64, connect, plain, start_sasl_mta, swaks)

REMOTE = "someone@remote.example"


def test_auth_not_offered_or_accepted_before_starttls(mta_factory, cert_factory):
    mta = start_sasl_mta(mta_factory, cert_factory.valid("mx.hardener.test"))
    with connect(mta) as c:
        assert c.greeting()[0] == 220
        code, text = c.cmd("EHLO client.example")
        assert code == 250 and "STARTTLS" in text and "AUTH" not in text
        assert c.cmd(f"AUTH PLAIN {plain('alice', PASSWORD)}") == (
            503, "503 5.5.1 Error: authentication not enabled")
        assert c.starttls()[0] == 220
        text = c.cmd("EHLO client.example")[1]
        assert "250-AUTH PLAIN LOGIN" in text.splitlines()
        assert c.cmd(f"AUTH PLAIN {plain('alice', PASSWORD)}") == (
            235, "235 2.7.0 Authentication successful")
        assert c.cmd(f"AUTH PLAIN {plain('alice', PASSWORD)}")[1] == \
            "503 5.5.1 Error: already authenticated"


def test_swaks_plain_and_login_relay_when_authenticated(mta_factory, cert_factory,
                                                         smtp_sink_factory, loopback):
    sink = smtp_sink_factory()
    mta = start_sasl_mta(mta_factory, cert_factory.valid("mx.hardener.test"),
                         {"relayhost": f"[{sink.address}]:{sink.port}"})
    outside = loopback.address()        # not in mynetworks
    for mech in ("PLAIN", "LOGIN"):
        done = swaks(mta.address, mta.port, "--local-interface", outside, "--tls",
                     "--auth", mech, "--auth-user", "alice", "--auth-password", PASSWORD,
                     "--from", "alice@client.example", "--to", REMOTE)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "235 2.7.0 Authentication successful" in done.stdout
    assert sink.wait_for_messages(2, timeout=60) == 2, mta.log_text()[-3000:]
    log = mta.log_text()
    assert "sasl_method=PLAIN, sasl_username=alice" in log
    assert "sasl_method=LOGIN, sasl_username=alice" in log
    assert PASSWORD not in log


def test_unauthenticated_relay_is_refused(mta_factory, cert_factory, smtp_sink_factory,
                                          loopback):
    sink = smtp_sink_factory()
    mta = start_sasl_mta(mta_factory, cert_factory.valid("mx.hardener.test"),
                         {"relayhost": f"[{sink.address}]:{sink.port}"})
    done = swaks(mta.address, mta.port, "--local-interface", loopback.address(), "--tls",
                 "--from", "x@client.example", "--to", REMOTE, "--quit-after", "RCPT")
    assert done.returncode != 0
    assert f"554 5.7.1 <{REMOTE}>: Relay access denied" in done.stdout


def test_wrong_password_is_refused_and_throttled(mta_factory, cert_factory, loopback):
    mta = start_sasl_mta(mta_factory, cert_factory.valid("mx.hardener.test"))
    source = loopback.address()
    waits = []
    for attempt in range(3):
        with connect(mta, source) as c:
            c.ehlo_tls()
            start = time.monotonic()
            code, text = c.cmd(f"AUTH PLAIN {plain('alice', 'wrong' + str(attempt))}")
            waits.append(time.monotonic() - start)
            assert text == "535 5.7.8 Error: authentication failed: authentication failure"
    # 1 s, then 2 s, then 4 s: the delay grows per client, across sessions
    assert waits[0] >= 0.95 and waits[1] >= 1.95 and waits[2] >= 3.95, waits
    log = mta.log_text()
    assert "SASL PLAIN authentication failed: authentication failure, sasl_username=alice" in log
    assert "wrong0" not in log


def test_unknown_user_gets_the_same_reply(mta_factory, cert_factory, loopback):
    mta = start_sasl_mta(mta_factory, cert_factory.valid("mx.hardener.test"))
    with connect(mta, loopback.address()) as c:
        c.ehlo_tls()
        assert c.cmd(f"AUTH PLAIN {plain('mallory', PASSWORD)}")[1] == \
            "535 5.7.8 Error: authentication failed: authentication failure"


def test_auth_rate_limit_answers_450(mta_factory, cert_factory, loopback):
    mta = start_sasl_mta(mta_factory, cert_factory.valid("mx.hardener.test"),
                         {"smtpd_client_auth_rate_limit": "2",
                          "smtpd_client_event_limit_exceptions": ""})
    with connect(mta, loopback.address()) as c:
        c.ehlo_tls()
        for _ in range(2):
            assert c.cmd("AUTH LOGIN")[0] == 334
            assert c.cmd("*")[1] == "501 5.7.0 Authentication aborted"
        code, text = c.cmd(f"AUTH PLAIN {plain('alice', PASSWORD)}")
        assert code == 450 and text.startswith("450 4.7.1 Error: too many AUTH commands from ")
    assert "AUTH command rate limit exceeded: 3 from unknown[" in mta.log_text()


def test_login_exchange_and_cancel(mta_factory, cert_factory):
    mta = start_sasl_mta(mta_factory, cert_factory.valid("mx.hardener.test"))
    with connect(mta) as c:
        c.ehlo_tls()
        assert c.cmd("AUTH LOGIN") == (334, "334 VXNlcm5hbWU6")
        assert c.cmd(b64("alice")) == (334, "334 UGFzc3dvcmQ6")
        assert c.cmd("*") == (501, "501 5.7.0 Authentication aborted")
        assert c.cmd(f"AUTH LOGIN {b64('alice')}") == (334, "334 UGFzc3dvcmQ6")
        assert c.cmd(b64(PASSWORD))[0] == 235


def test_response_limit_and_bad_base64(mta_factory, cert_factory):
    mta = start_sasl_mta(mta_factory, cert_factory.valid("mx.hardener.test"),
                         {"smtpd_sasl_response_limit": "100"})
    with connect(mta) as c:
        c.ehlo_tls()
        assert c.cmd("AUTH PLAIN") == (334, "334 ")
        assert c.cmd("A" * 200) == (500, "500 5.5.6 SASL response limit exceeded")
        assert c.cmd("AUTH PLAIN") == (334, "334 ")
        assert c.cmd("AGFsaWNl AHg=")[1] == \
            "535 5.7.8 Error: authentication failed: bad protocol / cancel"
        # the session goes on: the next command is read as a command
        assert c.cmd("NOOP")[0] == 250


def test_auth_during_mail_transaction_and_mail_auth_parameter(mta_factory, cert_factory):
    mta = start_sasl_mta(mta_factory, cert_factory.valid("mx.hardener.test"))
    with connect(mta) as c:
        c.ehlo_tls()
        assert c.cmd(f"AUTH PLAIN {plain('alice', PASSWORD)}")[0] == 235
        assert c.cmd("MAIL FROM:<alice@client.example> AUTH=<alice@client.example>")[0] == 250
        assert c.cmd(f"AUTH PLAIN {plain('alice', PASSWORD)}")[1] == \
            "503 5.5.1 Error: MAIL transaction in progress"
        assert c.cmd(f"RCPT TO:<{REMOTE}>")[0] == 250
    assert "sasl_sender=<alice@client.example>" in mta.wait_for_log("sasl_sender=")


def test_credentials_file_readable_by_others_is_refused(mta_factory, cert_factory):
    mta = start_sasl_mta(mta_factory, cert_factory.valid("mx.hardener.test"))
    mta.stop()
    (mta.config_dir / "sasl_passwd").chmod(0o644)
    try:
        mta.start(timeout=10)
    except AssertionError as exc:
        message = str(exc)
    else:
        raise AssertionError("the daemon started with a world-readable credentials file")
    assert f"{mta.config_dir / 'sasl_passwd'}: mode 0644" in message
