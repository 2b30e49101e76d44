"""Stop under load, then start (issue 8, "Done when"): every message that got a 250 is delivered,
and duplicates (a message queued whose 250 the client never read) are counted and bounded by the
number of sessions in flight at the stop."""

from __future__ import annotations

import re
import threading

from tests.fixtures.mta import SmtpClient
from tests.fixtures.relay import NO_TLS, queue_count, wait_until

SESSIONS, PER_SESSION = 8, 5000   # more than the stop grace lets them send


def sender(mta, worker: int, acked: list[str], stop: threading.Event) -> None:
    """Send numbered messages one per transaction until the daemon goes away; record each 250."""
    n = 0
    try:
        with SmtpClient(mta.address, mta.port, timeout=10) as c:
            c.greeting()
            c.cmd("EHLO load.example")
            while n < PER_SESSION and not stop.is_set():
                tag = f"w{worker}-m{n}"
                if c.cmd("MAIL FROM:<sender@sender.example>")[0] != 250:
                    return
                if c.cmd(f"RCPT TO:<{tag}@remote.example>")[0] != 250:
                    return
                if c.cmd("DATA")[0] != 354:
                    return
                c.send_raw(f"Subject: {tag}\r\n\r\nload\r\n.\r\n".encode())
                if c.read_reply()[0] == 250:
                    acked.append(tag)
                n += 1
    except OSError:
        pass   # the daemon stopped under us: what was acknowledged is recorded


def test_stop_under_load_then_start_delivers_every_acknowledged_message(mta_factory,
                                                                         smtp_sink_factory):
    sink = smtp_sink_factory()
    mta = mta_factory({**NO_TLS, "relayhost": f"[{sink.address}]:{sink.port}"})
    acked: list[str] = []
    stop = threading.Event()
    threads = [threading.Thread(target=sender, args=(mta, w, acked, stop)) for w in range(SESSIONS)]
    for t in threads:
        t.start()
    assert wait_until(lambda: len(acked) >= 200, 60)
    assert mta.stop(timeout=60) == 0          # SIGTERM, as `hardener mta stop` sends
    stop.set()
    for t in threads:
        t.join(60)
    mta.start()
    assert wait_until(lambda: queue_count(mta) == 0, 120)
    tags = []
    for f in sink.message_files():
        m = re.search(r"^Subject: (\S+)", f.read_text(errors="replace"), re.M)
        if m:
            tags.append(m.group(1))
    missing = set(acked) - set(tags)
    assert not missing, f"acknowledged but not delivered: {sorted(missing)[:10]}"
    duplicates = len(tags) - len(set(tags))
    unacknowledged = len(set(tags) - set(acked))   # queued, 250 lost with the connection
    print(f"\nacknowledged {len(acked)}, delivered {len(tags)}, duplicates {duplicates}, "
          f"delivered without a 250 read {unacknowledged}")
    assert duplicates == 0
    assert unacknowledged <= SESSIONS
