"""The runner: politeness (one connection at a time per target) and report order, on real aiosmtpd."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Sink
from aiosmtpd.smtp import SMTP

from hardener.audit.context import AuditOptions, AuditTarget
from hardener.audit.runner import audit_all
from tests.audit.conftest import AuditAddresses
from tests.fixtures.net import free_ports


class CountingController(Controller):
    """aiosmtpd whose protocol instances count open connections (instrumentation, not a fake)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lock = threading.Lock()
        self.open = 0
        self.most_open = 0
        self.total = 0

    def factory(self) -> SMTP:
        controller = self

        class Counted(SMTP):
            def connection_made(self, transport) -> None:
                with controller.lock:
                    controller.open += 1
                    controller.total += 1
                    controller.most_open = max(controller.most_open, controller.open)
                super().connection_made(transport)

            counted_out = False

            def _out(self) -> None:
                with controller.lock:
                    if not self.counted_out:
                        self.counted_out = True
                        controller.open -= 1

            async def smtp_QUIT(self, arg: str) -> None:
                # the session ends here, before the 221 reaches the client: no race with its next
                # connection (connection_lost may run after the client has already reconnected)
                self._out()
                await super().smtp_QUIT(arg)

            def connection_lost(self, exc) -> None:
                self._out()   # sessions without QUIT (Controller's own start-up check)
                super().connection_lost(exc)

        return Counted(self.handler, **self.SMTP_kwargs)


@pytest.mark.timeout(60)
def test_one_connection_at_a_time_per_target(audit_addresses: AuditAddresses) -> None:
    address = audit_addresses.host()
    servers = [CountingController(Sink(), hostname=address, port=port)
               for port in free_ports(address, 4)]
    for server in servers:
        server.start()
    for _ in range(200):  # let each server see its start-up check connection go (bounded wait)
        if all(server.open == 0 for server in servers):
            break
        time.sleep(0.01)
    try:
        targets = [AuditTarget(address, s.port) for s in servers]
        # every session of these checks ends with QUIT (the pipelining check drops its session at
        # 354 instead, which the server would notice only asynchronously)
        options = AuditOptions(timeout=5, concurrency=4,
                               source_addresses=(audit_addresses.outside(), audit_addresses.outside()),
                               checks=("banner", "enumeration", "tls", "relay", "mynetworks"))
        report = asyncio.run(audit_all(targets, options))
    finally:
        for server in servers:
            server.stop()
    assert [t.target for t in report.targets] == [t.display for t in targets]
    assert all(t.status == "complete" for t in report.targets)
    for server in servers:
        assert server.total > 5           # many sessions: banner, protocol, relay from two vantages...
        assert server.most_open == 1      # ...but never two at once


def test_checks_are_registered_explicitly_and_completely() -> None:
    """CHECKS lists every check module of hardener/audit/checks once, with the slugs that module
    records, and every slug is a control of the catalog."""
    import importlib
    import pkgutil

    import hardener.audit.checks
    from hardener.audit.runner import CHECKS
    from hardener.controls import by_slug

    names = [m.name for m in pkgutil.iter_modules(hardener.audit.checks.__path__)]
    modules = {n for n in names  # helpers (e.g. tls_first) define no SLUGS and no run()
               if hasattr(importlib.import_module(f"hardener.audit.checks.{n}"), "SLUGS")}
    assert sorted(c.module.rsplit(".", 1)[1] for c in CHECKS) == sorted(modules)
    assert [c.name for c in CHECKS] == [c.module.rsplit(".", 1)[1] for c in CHECKS]
    for check in CHECKS:
        assert importlib.import_module(check.module).SLUGS == check.slugs, check.name
        for slug in check.slugs:
            by_slug(slug)


# Runs the real CLI with cryptography.x509 made unimportable in that process only: a broken
# library is a fault we cannot make for real without breaking the shared venv for every other test.
POISONED_CLI = ("import sys; sys.modules['cryptography.x509'] = None; "
                "from hardener.cli import main; sys.exit(main(sys.argv[1:]))")


@pytest.mark.timeout(240)
def test_a_check_that_cannot_load_is_an_error_and_the_target_incomplete(
        postfix_factory, audit_addresses: AuditAddresses) -> None:
    import json
    import subprocess
    import sys

    from hardener.audit.runner import CHECKS

    inst = postfix_factory({"smtpd_banner": "$myhostname ESMTP", "smtpd_peername_lookup": "no"},
                           address=audit_addresses.host())
    proc = subprocess.run(
        [sys.executable, "-c", POISONED_CLI, "audit", f"{inst.address}:{inst.port}",
         "--source-address", audit_addresses.outside(), "--timeout", "5", "--format", "json",
         "--fail-on", "critical"],
        capture_output=True, text=True, timeout=200)
    assert proc.returncode == 3, proc.stderr      # before: 0, the TLS checks silently missing
    report = json.loads(proc.stdout)
    (target,) = report["targets"]
    assert target["status"] == "incomplete"
    statuses = {c["check"]: (c["status"], c.get("detail", "")) for c in target["checks"]}
    tls = next(c for c in CHECKS if c.name == "tls")
    for slug in tls.slugs:
        status, detail = statuses[slug]
        assert status == "error" and detail.startswith("cannot run: ModuleNotFoundError"), (slug, detail)
    others = [slug for c in CHECKS if c.name not in ("tls", "smuggling") for slug in c.slugs]
    assert all(statuses[slug][0] in ("passed", "failed", "skipped") for slug in others), statuses
    (note,) = [n for n in report["notes"] if n.startswith("check tls cannot run")]
    assert f"hardener: note: {note}" in proc.stderr.splitlines()
