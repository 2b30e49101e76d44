"""The rendered systemd unit: its exposure score in `systemd-analyze security --offline=true`, and the
daemon started with the unit's own limits, read from the rendered file.

There is no systemd as PID 1 here, so the unit cannot be started by systemd. What can be applied
for real is applied to the daemon exactly as the unit says: the capability bounding set and
NoNewPrivileges (util-linux setpriv), UMask, and MemoryDenyWriteExecute (prctl PR_SET_MDWE, the
kernel's own form of what systemd installs as a seccomp filter). The mount namespace and the
system-call filter are not emulated.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.mta import MtaInstance, SmtpClient
from tests.render.helpers import PROFILES, render, render_for

needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze not installed (Debian package systemd)")

# What the unit scores today, per profile (they render the same [Service] section). A root master
# that setuids and chroots its children cannot get below 2.2 in systemd 252's model: User=root,
# CAP_SETUID/SETGID, chroot in the system-call list, AF_INET and the host's network alone count 2.2
# when everything else is closed (measured: docs in the report of issue 8).
SCORE_NOW = 2.7
SCORE_GOAL = 2.0
HARDENER = str(Path(sys.executable).with_name("hardener"))


def exposure(unit_text: str, directory: Path) -> float:
    """The overall exposure level systemd-analyze prints for `unit_text` (offline)."""
    unit = directory / "hardener-mta.service"
    unit.write_text(unit_text)
    proc = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager",
                           str(unit)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "SYSTEMD_COLORS": "0"})
    assert proc.returncode == 0, proc.stderr
    m = re.search(r"Overall exposure level for hardener-mta\.service: (\d+\.\d+) ", proc.stdout)
    assert m, proc.stdout[-2000:]
    return float(m.group(1))


def _unit(profile: str, *extra: str) -> str:
    return render(profile, f"hardener_executable={HARDENER}", "config_directory=/etc/hardener",
                  "queue_directory=/var/spool/hardener", "maillog_file=/var/log/hardener.log",
                  *extra)["systemd/hardener-mta.service"]


@needs_analyze
@pytest.mark.parametrize("profile", PROFILES)
def test_exposure_score(profile: str, tmp_path: Path) -> None:
    score = exposure(_unit(profile), tmp_path)
    assert score <= SCORE_NOW, score


@needs_analyze
@pytest.mark.xfail(strict=True, reason="a root master that setuids and chroots its children scores "
                   "at least 2.2 in systemd 252 (User=root, CAP_SETUID/SETGID, chroot, AF_INET, "
                   "host network); below 2.0 needs a design change, see the issue 8 report")
@pytest.mark.parametrize("profile", PROFILES)
def test_exposure_score_below_goal(profile: str, tmp_path: Path) -> None:
    assert exposure(_unit(profile), tmp_path) < SCORE_GOAL


def test_the_sandbox_parser_reads_the_unit() -> None:
    sandbox = Sandbox.from_unit(_unit("null-client"))
    assert sandbox.umask == 0o022 and sandbox.no_new_privs and sandbox.mdwe
    assert "CAP_SYS_ADMIN" not in sandbox.caps and "CAP_DAC_OVERRIDE" not in sandbox.caps
    assert sandbox.exec_start == [HARDENER, "mta", "serve", "--config", "/etc/hardener"]


# ---- the daemon under the unit's limits ----------------------------------------------------

class Sandbox:
    """The limits of a rendered unit that can be applied without systemd."""

    def __init__(self, exec_start: list[str], caps: list[str], umask: int, no_new_privs: bool,
                 mdwe: bool) -> None:
        self.exec_start, self.caps, self.umask = exec_start, caps, umask
        self.no_new_privs, self.mdwe = no_new_privs, mdwe

    @classmethod
    def from_unit(cls, text: str) -> "Sandbox":
        values: dict[str, str] = {}
        for line in text.splitlines():
            if line and not line.startswith(("#", "[")) and "=" in line:
                key, value = line.split("=", 1)
                values[key] = value
        return cls(values["ExecStart"].split(), values["CapabilityBoundingSet"].split(),
                   int(values["UMask"], 8), values["NoNewPrivileges"] == "yes",
                   values.get("MemoryDenyWriteExecute") == "yes")

    def command(self) -> list[str]:
        """The ExecStart command wrapped in those limits."""
        bounding = "-all," + ",".join("+" + c.lower().removeprefix("cap_") for c in self.caps)
        wrapper = ("import ctypes, os, sys\n"
                   "if int(sys.argv[1]):\n"
                   "    libc = ctypes.CDLL(None, use_errno=True)\n"
                   "    assert libc.prctl(65, 1, 0, 0, 0) == 0, 'PR_SET_MDWE'\n"
                   "os.umask(int(sys.argv[2], 8))\n"
                   "os.execvp(sys.argv[3], sys.argv[3:])\n")
        setpriv = ["setpriv", f"--bounding-set={bounding}",
                   *(["--no-new-privs"] if self.no_new_privs else []), "--"]
        return [sys.executable, "-c", wrapper, str(int(self.mdwe)), oct(self.umask),
                *setpriv, *self.exec_start]


class SandboxedMta(MtaInstance):
    """An MtaInstance whose config directory holds rendered files, started as the unit says."""

    def __init__(self, root: Path, address: str, port: int, sandbox: Sandbox) -> None:
        super().__init__(root, address, port)
        self.sandbox = sandbox

    def command(self) -> list[str]:
        """The unit's ExecStart within its limits (the fixture's start waits for the 220)."""
        return self.sandbox.command()


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) not installed")
def test_the_daemon_works_within_the_units_limits(mta_factory, smtp_sink_factory) -> None:
    sink = smtp_sink_factory()
    rendered = mta_factory(start=False)
    address, port = rendered.address, rendered.port
    files = render_for(rendered, "null-client", f"hardener_executable={HARDENER}",
                       f"relayhost=[{sink.address}]:{sink.port}", f"inet_interfaces={address}",
                       "smtp_tls_security_level=none")
    mta = SandboxedMta(rendered.root, address, port,
                       Sandbox.from_unit(files["systemd/hardener-mta.service"]))
    mta.start(timeout=30)
    try:
        with SmtpClient(address, port, source="127.0.0.1") as c:
            assert c.greeting()[0] == 220
            assert c.cmd("EHLO client.example")[0] == 250
            assert c.cmd("MAIL FROM:<app@client.example>")[0] == 250
            assert c.cmd("RCPT TO:<ops@remote.example>")[0] == 250
            assert c.cmd("DATA")[0] == 354
            reply = c.cmd(b"Subject: unit\r\n\r\nunder the unit's limits\r\n.")
            assert reply[0] == 250, (reply, mta.log_text()[-3000:])
            c.cmd("QUIT")
        assert sink.wait_for_messages(1, timeout=30) == 1, mta.log_text()[-3000:]
        master = mta.proc.pid
        status = Path(f"/proc/{master}/status").read_text()
        bound = int(re.search(r"^CapBnd:\s*([0-9a-f]+)", status, re.M).group(1), 16)
        assert bound == _mask(mta.sandbox.caps)      # really running within the unit's set
        assert re.search(r"^NoNewPrivs:\s*1", status, re.M)
        assert mta.stop() == 0, mta.log_text()[-3000:]
    finally:
        mta.stop()


def _mask(caps: list[str]) -> int:
    numbers = {"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3,
               "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_NET_BIND_SERVICE": 10,
               "CAP_SYS_CHROOT": 18}
    return sum(1 << numbers[c] for c in caps)
