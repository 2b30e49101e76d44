"""Retry backoff, the dead-destination cache, the concurrency window and the back half's main.cf
settings (a value the daemon cannot honour stops it with exit 2 and one line)."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from hardener.mta.qmgr.manager import format_delay
from hardener.mta.qmgr.dead import DeadDestinations
from hardener.mta.qmgr.retry import RetryPolicy
from hardener.mta.qmgr.window import ConcurrencyWindow


def test_backoff_doubles_within_bounds():
    policy = RetryPolicy(minimal_backoff_time=300, maximal_backoff_time=4000)
    delays = [0.0]
    for _ in range(6):
        delays.append(policy.next_delay(delays[-1]))
    assert delays[1:] == [300, 600, 1200, 2400, 4000, 4000]


def test_lifetimes():
    policy = RetryPolicy(maximal_queue_lifetime=100, bounce_queue_lifetime=10)
    assert not policy.expired(1000, 1050, is_bounce=False)
    assert policy.expired(1000, 1100, is_bounce=False)
    assert policy.expired(1000, 1010, is_bounce=True)
    assert RetryPolicy(maximal_queue_lifetime=0).expired(5, 5, False)  # 0: one attempt only


def test_dead_destinations_expire():
    now = [100.0]
    dead = DeadDestinations(ttl=60, clock=lambda: now[0])
    dead.mark_dead("smtp:[10.0.0.1]:25", "connect to ...: Connection refused")
    assert dead.check("smtp:[10.0.0.1]:25").reason.endswith("refused")
    assert dead.check("smtp:other") is None
    now[0] += 61
    assert dead.check("smtp:[10.0.0.1]:25") is None
    assert len(dead) == 0


def test_concurrency_window_slow_start():
    async def go():
        window = ConcurrencyWindow(initial=2, limit=4)
        running = peak = 0

        async def job(ok: bool):
            nonlocal running, peak
            async with window:
                running += 1
                peak = max(peak, running)
                await asyncio.sleep(0.01)
                running -= 1
                window.success() if ok else window.failure()

        await asyncio.gather(*(job(False) for _ in range(6)))
        assert peak == 2 and window.window == 2
        await asyncio.gather(*(job(True) for _ in range(20)))
        assert window.window == 4 and peak == 4

    asyncio.run(go())


def test_delay_format():
    assert [format_delay(x) for x in (0, 0.001, 0.12, 1.5, 42.25, 1234.5)] == \
        ["0", "0", "0.12", "1.5", "42.2", "1234"]


@pytest.mark.parametrize("setting, field", [
    ({"minimal_backoff_time": "600s", "maximal_backoff_time": "300s"}, "maximal_backoff_time"),
    ({"queue_run_delay": "soon"}, "queue_run_delay"),
    ({"smtp_tls_security_level": "sometimes"}, "smtp_tls_security_level"),
    ({"default_transport": "uucp"}, "default_transport"),
    ({"transport_maps": "ldap:/etc/ldap.cf"}, "transport_maps"),
    ({"default_destination_concurrency_limit": "0"}, "default_destination_concurrency_limit"),
])
def test_bad_back_settings_stop_the_daemon(mta_factory, setting, field):
    mta = mta_factory(setting, start=False)
    done = subprocess.run([sys.executable, "-m", "hardener", "mta", "serve", "--config",
                           str(mta.config_dir)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "main.cf:" in lines[0] and field in lines[0], done.stderr
    assert "Traceback" not in done.stderr
