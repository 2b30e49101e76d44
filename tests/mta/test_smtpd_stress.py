"""Stress mode: sessions accepted while a service is at its process limit get the stress limits.

Postfix's master never puts a service that listens only on loopback addresses into stress mode
(MASTER_FLAG_LOCAL_ONLY), and tests may only use loopback. So this test runs the real smtpd in
process and builds its listener with stress_capable=True (a constructor argument, as
Listener.stress_capable is computed from the listen addresses); everything else is the real
thing: main.cf through load_settings, real sockets, a real client.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time

from hardener.mta.cleanup.service import Cleanup, CleanupSettings
from hardener.mta.master.privileges import bind_listeners
from hardener.mta.queue.layout import QueueLayout
from hardener.mta.config.settings import load_settings
from hardener.mta.smtpd.server import start_services
from hardener.mta.smtpd.context import SmtpdContext
from tests.fixtures.mta import SmtpClient

MASTER_CF = "{listen} inet n - n - 2 smtpd\nlocal unix - n n - - local\n"


class InProcessSmtpd:
    """smtpd services on their own event loop in a thread."""

    def __init__(self, config_dir, stress_capable: bool) -> None:
        settings = load_settings(config_dir)
        settings.listeners = [dataclasses.replace(lst, stress_capable=stress_capable)
                              for lst in settings.listeners]
        layout = QueueLayout(settings.queue_directory)
        layout.ensure()
        self.cleanup = Cleanup(layout, CleanupSettings.from_settings(settings))
        self.ctx = SmtpdContext.build(settings, self.cleanup)
        self.sockets = bind_listeners(settings.listeners)
        self.loop = asyncio.new_event_loop()
        self.services: list = []
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)

            async def begin() -> None:
                self.services = start_services(self.ctx, self.sockets)
                started.set()

            self.loop.run_until_complete(begin())
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert started.wait(10)

    def stop(self) -> None:
        """Stop accepting, let the sessions end (bounded), stop the loop."""
        async def close() -> None:
            for service in self.services:
                service.close()
            for _ in range(100):
                if not sum(self.ctx.sessions.values()):
                    break
                await asyncio.sleep(0.05)
            self.loop.stop()

        self.loop.call_soon_threadsafe(lambda: self.loop.create_task(close()))
        self.thread.join(10)
        self.loop.close()
        for _, sock in self.sockets:
            sock.close()
        self.cleanup.close()


def test_sessions_accepted_at_the_process_limit_get_the_stress_timeout(mta_factory, loopback):
    mta = mta_factory({"smtpd_timeout": "${stress?{2}:{300}}s"}, master_cf_text=MASTER_CF,
                      start=False)
    smtpd = InProcessSmtpd(mta.config_dir, stress_capable=True)
    try:
        source = loopback.address()
        first = SmtpClient(mta.address, mta.port, source=source, timeout=30)
        assert first.greeting()[0] == 220              # a free slot left: normal limits
        second = SmtpClient(mta.address, mta.port, source=source, timeout=30)
        assert second.greeting()[0] == 220             # took the last slot: stress
        assert smtpd.services[0].in_stress()
        start = time.monotonic()
        assert second.read_reply()[1] == "421 4.4.2 mx.hardener.test Error: timeout exceeded"
        assert time.monotonic() - start < 20
        # the slot is free again; stress lasts (1000 s): the next session has 2 s too
        third = SmtpClient(mta.address, mta.port, source=source, timeout=30)
        assert third.greeting()[0] == 220
        assert third.read_reply()[0] == 421
        assert first.cmd("NOOP")[0] == 250              # the normal session is still there
        for c in (first, second, third):
            c.close()
    finally:
        smtpd.stop()


def test_loopback_only_service_never_enters_stress(mta_factory, loopback):
    mta = mta_factory({"smtpd_timeout": "${stress?{1}:{300}}s"}, master_cf_text=MASTER_CF,
                      start=False)
    smtpd = InProcessSmtpd(mta.config_dir, stress_capable=False)
    try:
        held = [SmtpClient(mta.address, mta.port, source=loopback.address(), timeout=30)
                for _ in range(2)]
        for c in held:
            assert c.greeting()[0] == 220
        assert not smtpd.services[0].in_stress()
        time.sleep(2)                                    # longer than the stress timeout
        assert all(c.cmd("NOOP")[0] == 250 for c in held)
        for c in held:
            c.close()
    finally:
        smtpd.stop()


def test_stress_capability_follows_the_listen_addresses(tmp_path):
    """As Postfix's master: loopback-only or single-process services never enter stress."""
    from hardener.mta.config.settings import _listeners
    from hardener.postfix.mastercf import parse_master_cf

    def capable(master_line: str, inet: list[str]) -> bool:
        master = parse_master_cf(master_line + "\n")
        return _listeners(None, master, inet, ["127.0.0.1", "192.0.2.1"], [])[0].stress_capable

    assert capable("smtp inet n - n - - smtpd", ["192.0.2.1"])
    assert not capable("smtp inet n - n - - smtpd", ["127.0.0.1"])
    assert not capable("smtp inet n - n - 1 smtpd", ["192.0.2.1"])
    assert not capable("127.0.0.1:10025 inet n - n - 10 smtpd", ["192.0.2.1"])
