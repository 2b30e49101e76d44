"""End to end through the real daemon (`hardener mta serve`): Postfix's smtp-source sends, the daemon
relays to Postfix's smtp-sink on another loopback address."""

from __future__ import annotations

import smtplib
import subprocess
import sys
import time
from pathlib import Path

from hardener.mta.queue.state import QueueState
from tests.fixtures.relay import (
    NO_TLS,
    mta_with_rejecting_next_hop,
    queue_count,
    sink_recipients,
    smtp_source,
    wait_until,
)
from tests.fixtures.unprivileged import as_user, skip_unless_nobody_can_run


def test_1000_messages_from_several_sessions_arrive_once(mta_factory, smtp_sink_factory):
    sink = smtp_sink_factory()
    mta = mta_factory({**NO_TLS, "relayhost": f"[{sink.address}]:{sink.port}"})
    done = smtp_source(mta, 1000, 10)
    assert done.returncode == 0, done.stderr
    assert sink.wait_for_messages(1000, timeout=90) >= 1000, mta.log_text()[-2000:]
    assert wait_until(lambda: queue_count(mta) == 0, 30)
    time.sleep(0.5)  # anything sent twice would show up now
    rcpts = sink_recipients(sink)
    assert len(rcpts) == 1000
    assert len(set(rcpts)) == 1000
    log = mta.log_text()
    assert log.count("status=sent (250") == 1000
    assert log.count(": removed") == 1000


def test_next_hop_down_then_back(mta_factory, smtp_sink_factory, loopback):
    from tests.fixtures.net import free_port

    addr = loopback.host()
    port = free_port(addr)
    mta = mta_factory({**NO_TLS, "relayhost": f"[{addr}]:{port}", "minimal_backoff_time": "1s",
                       "maximal_backoff_time": "4s", "queue_run_delay": "1s"})
    assert smtp_source(mta, 20, 2).returncode == 0
    assert wait_until(lambda: queue_count(mta, "deferred") == 20, 30), mta.log_text()[-2000:]
    state = QueueState(mta.queue_dir / "defer")
    # retries follow the backoff: 1s, 2s, 4s, 4s...
    assert wait_until(lambda: all(state.load(q.name).attempts >= 3
                            for q in (mta.queue_dir / "deferred").iterdir()), 30)
    for q in (mta.queue_dir / "deferred").iterdir():
        st = state.load(q.name)
        assert st.delay == min(2 ** (st.attempts - 1), 4)
        assert "Connection refused" in st.last_reason
    log = mta.log_text()
    assert "status=deferred (connect to" in log
    # the dead-destination cache: most deferrals are made without a connection attempt
    tried = log.count("status=deferred (connect to")
    suspended = log.count("status=deferred (delivery temporarily suspended: connect to")
    assert suspended > tried
    sink = smtp_sink_factory(addr, port)
    assert sink.wait_for_messages(20, timeout=30) == 20
    assert wait_until(lambda: queue_count(mta) == 0, 20)
    assert len(set(sink_recipients(sink))) == 20


def test_5xx_next_hop_gives_a_dsn_to_the_sender(mta_factory, smtp_sink_factory):
    mta, rejecting, home = mta_with_rejecting_next_hop(mta_factory, smtp_sink_factory)
    assert smtp_source(mta, 1, 1, rcpt="bob@remote.example",
                       sender="alice@sender.example").returncode == 0
    assert home.wait_for_messages(1, timeout=30) == 1, mta.log_text()[-2000:]
    dsn = home.message_files()[0].read_text()
    assert "X-Mail-Args: <>" in dsn and "X-Rcpt-Args: <alice@sender.example>" in dsn
    assert "report-type=delivery-status" in dsn and "Action: failed" in dsn
    log = mta.log_text()
    assert "status=bounced (host " in log and "sender non-delivery notification" in log


def test_sendmail_through_pickup_to_the_relay(mta_factory, smtp_sink_factory):
    skip_unless_nobody_can_run()
    sink = smtp_sink_factory()
    mta = mta_factory({**NO_TLS, "relayhost": f"[{sink.address}]:{sink.port}"})
    cmd = as_user([str(Path(sys.executable).parent / "hardener"), "sendmail", "-C",
                   str(mta.config_dir), "-t"])
    done = subprocess.run(cmd, input=b"To: ops@remote.example\nSubject: cron\n\nbackup ok\n",
                          capture_output=True, timeout=30, cwd="/")
    assert done.returncode == 0, done.stderr
    assert sink.wait_for_messages(1, timeout=30) == 1, mta.log_text()[-2000:]
    text = sink.message_files()[0].read_text()
    assert "X-Rcpt-Args: <ops@remote.example>" in text
    assert "X-Mail-Args: <nobody@mx.hardener.test>" in text
    assert "Message-Id: <" in text and "Date: " in text
    assert "uid=65534 from=<nobody@mx.hardener.test>" in mta.log_text()


def test_local_delivery_to_maildir_via_aliases(mta_factory):
    mta = mta_factory({**NO_TLS, "local_recipient_maps": ""})
    with smtplib.SMTP(mta.address, mta.port, timeout=30) as client:
        client.sendmail("sender@sender.example", ["postmaster@mx.hardener.test"],
                        b"Subject: to postmaster\r\n\r\nhello\r\n")
    maildir = mta.queue_dir / "spool" / "admin" / "Maildir" / "new"
    assert wait_until(lambda: maildir.is_dir() and len(list(maildir.iterdir())) == 1, 20), \
        mta.log_text()[-2000:]
    assert "Delivered-To: postmaster@mx.hardener.test" in next(maildir.iterdir()).read_text()


def test_tls_encrypt_never_sends_in_clear_text(mta_factory, smtp_sink_factory):
    sink = smtp_sink_factory()  # smtp-sink offers no STARTTLS
    mta = mta_factory({"smtp_tls_security_level": "encrypt",
                       "relayhost": f"[{sink.address}]:{sink.port}"})
    assert smtp_source(mta, 3, 1).returncode == 0
    assert wait_until(lambda: queue_count(mta, "deferred") == 3, 30), mta.log_text()[-2000:]
    assert sink.message_count() == 0
    assert "TLS is required, but was not offered by host" in mta.log_text()


def test_large_message_is_relayed_intact(mta_factory, smtp_sink_factory):
    """20 MB through smtpd, the queue and the smtp client's streaming (> 256 KB) path."""
    sink = smtp_sink_factory()
    mta = mta_factory({**NO_TLS, "relayhost": f"[{sink.address}]:{sink.port}",
                       "message_size_limit": "50000000"})
    line = ".starts with a dot " + "y" * 60 + "\r\n"
    body = ("Subject: big\r\n\r\n" + line * (20_000_000 // len(line))).encode()
    with smtplib.SMTP(mta.address, mta.port, timeout=120) as client:
        client.sendmail("sender@sender.example", ["big@remote.example"], body)
    assert sink.wait_for_messages(1, timeout=60) == 1, mta.log_text()[-2000:]
    assert wait_until(lambda: queue_count(mta) == 0, 60)
    dumped = sink.message_files()[0].read_bytes()
    assert dumped.count(b"\n.starts with a dot ") == 20_000_000 // len(line)
    assert b"\n..starts" not in dumped
