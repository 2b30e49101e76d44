"""Fixtures for the audit tests: addresses of our own and a runner for `hardener audit`.

Addresses: several pytest sessions (other helpers, CI jobs) may run on this machine at once, and
tests/fixtures/net.py numbers its addresses from the same start in every process. The audit tests
therefore take servers from 127.77.P.0/24 and vantage points from 127.78.P.0/24 and 127.79.P.0/24,
P a block this process claims (tests/fixtures/address_block.py), and add/remove only what they add.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.address_block import claim_block


class AuditAddresses:
    """Distinct loopback addresses for this test process."""

    def __init__(self) -> None:
        self.block = claim_block("audit", 200) + 20
        self._next = {77: 10, 78: 10, 79: 10}
        self._added: list[str] = []

    def _take(self, second: int) -> str:
        n = self._next[second]
        self._next[second] += 1
        return f"127.{second}.{self.block}.{n}"

    def host(self) -> str:
        """A server address, added to lo (Postfix listens only on addresses an interface holds)."""
        addr = self._take(77)
        subprocess.run(["ip", "addr", "add", f"{addr}/8", "dev", "lo"], check=False,
                       capture_output=True)
        self._added.append(addr)
        return addr

    def inside(self) -> str:
        """A client source address in 127.78.P.0/24 (no need to add: lo routes all of 127/8)."""
        return self._take(78)

    def outside(self) -> str:
        """A client source address in 127.79.P.0/24."""
        return self._take(79)

    @property
    def inside_net(self) -> str:
        return f"127.78.{self.block}.0/24"

    @property
    def outside_net(self) -> str:
        return f"127.79.{self.block}.0/24"

    def cleanup(self) -> None:
        for addr in self._added:
            subprocess.run(["ip", "addr", "del", f"{addr}/8", "dev", "lo"], check=False,
                           capture_output=True)
        self._added.clear()


@pytest.fixture(scope="session")
def audit_addresses() -> Iterator[AuditAddresses]:
    """Session-wide address allocator for the audit tests."""
    pool = AuditAddresses()
    yield pool
    pool.cleanup()


def run_audit_cli(args: list[str], tmp_path: Path) -> tuple[int, dict[str, Any]]:
    """Run `hardener audit ARGS --format json --output FILE` in-process; (exit code, JSON report)."""
    from hardener.cli import main as cli_main  # imported here: a broken CLI module fails only these

    out = tmp_path / f"report-{len(list(tmp_path.glob('report-*')))}.json"
    code = cli_main(["audit", *args, "--format", "json", "--output", str(out)])
    report = json.loads(out.read_text()) if out.exists() else {}
    return code, report


def checks_found(target: dict[str, Any]) -> set[str]:
    """The set of check slugs with findings in one target of a JSON report."""
    return {f["check"] for f in target["findings"]}


def statuses(target: dict[str, Any]) -> dict[str, str]:
    return {c["check"]: c["status"] for c in target["checks"]}
