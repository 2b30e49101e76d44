"""`hardener mta reload` while smtp-source is sending (issue 8, "Done when"): no session is dropped
and no message lost. smtp-source exits non-zero when a session breaks or a command gets an
unexpected reply; every message must then reach the next hop (smtp-sink) exactly once."""

from __future__ import annotations

import subprocess
import sys
import time

from tests.fixtures.relay import NO_TLS, queue_count, sink_recipients, wait_until

MESSAGES, SESSIONS, RELOADS = 2000, 10, 3


def test_reload_under_load_loses_nothing(mta_factory, smtp_sink_factory):
    sink = smtp_sink_factory()
    mta = mta_factory({**NO_TLS, "relayhost": f"[{sink.address}]:{sink.port}"})
    load = subprocess.Popen(["smtp-source", "-N", "-s", str(SESSIONS), "-m", str(MESSAGES),
                             "-l", "2048", "-f", "sender@sender.example",
                             "-t", "rcpt@remote.example", "-M", "client.test",
                             f"{mta.address}:{mta.port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    reloads = 0
    deadline = time.monotonic() + 120
    while load.poll() is None and time.monotonic() < deadline:
        if reloads < RELOADS and mta.log_text().count(": client=") >= (reloads + 1) * 300:
            done = subprocess.run([sys.executable, "-m", "hardener", "mta", "reload", "--config",
                                   str(mta.config_dir)], capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            reloads += 1
        time.sleep(0.05)
    out, err = load.communicate(timeout=120)
    assert load.returncode == 0, err.decode(errors="replace")[-2000:]
    assert reloads == RELOADS, f"the load ended after {reloads} reloads"
    assert mta.log_text().count("reload -- configuration") >= reloads
    assert sink.wait_for_messages(MESSAGES, timeout=120) == MESSAGES
    assert wait_until(lambda: queue_count(mta) == 0, 60)
    recipients = sink_recipients(sink)
    assert len(recipients) == MESSAGES == len(set(recipients))   # each exactly once
