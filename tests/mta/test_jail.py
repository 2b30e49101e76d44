"""The smtpd jail from inside: code running in a jailed smtpd process cannot read /etc/shadow, write
outside the queue directory or become root again (issue 8, "Done when").

The smtpd process is started as the master starts it: the same entry (hardener.mta.smtpd.process.run)
with the job the master builds (hardener.mta.master.daemon._Master) from a real configuration (the
mta fixture's main.cf and master.cf, chroot column y as the rendered profiles say), in a process
forked from the test as the master forks its children from root. The only difference is the
post_jail seam, an argument of `run` (no setting can turn it on): a probe that runs inside the jail,
after the privilege drop and before smtpd serves, tries each escape, reports over a pipe, and exits.
"""

from __future__ import annotations

import errno
import json
import os
import pwd
import select
import time
from pathlib import Path

import pytest

from tests.fixtures.mta import MAIL_OWNER

JAILED_MASTER_CF = "{listen}  inet  n  -  y  -  -  smtpd\nqmgr  unix  n  -  n  300 1 qmgr\n"
UNJAILED_MASTER_CF = "{listen}  inet  n  -  n  -  -  smtpd\nqmgr  unix  n  -  n  300 1 qmgr\n"
PROBE_TIMEOUT = 30.0


def _attempt(action) -> str:
    """'ok' when `action` succeeded, else the errno name it failed with."""
    try:
        action()
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, str(exc))
    return "ok"


def _probe(outside: str, outside_name: str, report_fd: int):
    """The post_jail hook: every escape attempt, reported as one JSON line; then exit, never
    serve. Uses only modules imported before the jail (os, json)."""

    def create(path: str) -> None:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))

    def hook() -> None:
        results = {
            "ids": [list(os.getresuid()), list(os.getresgid()), os.getgroups()],
            "root_listing": sorted(os.listdir("/")),
            "open /etc/shadow": _attempt(lambda: os.close(os.open("/etc/shadow", os.O_RDONLY))),
            "open ../../etc/shadow": _attempt(
                lambda: os.close(os.open("../../etc/shadow", os.O_RDONLY))),
            "open /proc/1/root/etc/shadow": _attempt(
                lambda: os.close(os.open("/proc/1/root/etc/shadow", os.O_RDONLY))),
            "create outside (absolute)": _attempt(lambda: create(f"{outside}/escaped-absolute")),
            "create outside (relative)": _attempt(
                lambda: create(f"../../{outside_name}/escaped-relative")),
            "create in the queue root": _attempt(lambda: create("/escaped-root")),
            "create /etc/escaped": _attempt(lambda: create("/etc/escaped")),
            "setuid(0)": _attempt(lambda: os.setuid(0)),
            "seteuid(0)": _attempt(lambda: os.seteuid(0)),
            "setgid(0)": _attempt(lambda: os.setgid(0)),
            "chroot(/)": _attempt(lambda: os.chroot("/")),
        }
        os.write(report_fd, json.dumps(results).encode() + b"\n")
        os._exit(0)

    return hook


def _run_jailed_probe(mta, outside: Path) -> dict:
    """Start one smtpd process the way the master does, with the probe as its post_jail hook."""
    from hardener.mta.config.settings import load_settings
    from hardener.mta.master import daemon
    from hardener.mta.master.privileges import bind_listeners
    from hardener.mta.smtpd.context import SmtpdContext
    from hardener.mta.smtpd.process import run as run_smtpd, snapshot_passwd

    settings = load_settings(mta.config_dir)
    layout, _owner = daemon._prepare_queue(settings)
    sockets = bind_listeners(settings.listeners)
    master = None
    try:
        ctx = SmtpdContext.build(settings, None)
        snapshot_passwd(ctx.recipients)
        services = daemon._group_by_service(sockets)
        daemon._preload_modules()   # as serve(): nothing is imported inside the jail
        master = daemon._Master(settings, layout, ctx, services, sockets, mta.config_dir)
        (job,) = master.smtpd_jobs.values()
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:   # the smtpd child: never returns into pytest
            try:
                os.close(rfd)
                run_smtpd(job, post_jail=_probe(str(outside), outside.name, wfd))
            finally:
                os._exit(1)
        os.close(wfd)
        try:
            data = b""
            deadline = time.monotonic() + PROBE_TIMEOUT
            while not data.endswith(b"\n") and time.monotonic() < deadline:
                ready, _, _ = select.select([rfd], [], [], max(0.0, deadline - time.monotonic()))
                if not ready:
                    break
                chunk = os.read(rfd, 65536)
                if not chunk:
                    break
                data += chunk
        finally:
            os.close(rfd)
            _reap(pid)
        assert data.endswith(b"\n"), "the jailed smtpd did not report (crashed before the hook?)"
        return json.loads(data)
    finally:
        if master is not None:
            master.close()
        for _, sock in sockets:
            sock.close()


def _reap(pid: int) -> None:
    deadline = time.monotonic() + PROBE_TIMEOUT
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)


@pytest.fixture
def outside():
    """A world-writable directory next to (outside) the queue directory: anyone may create in it,
    so only the jail can stop the probe."""
    def make(mta) -> Path:
        path = mta.root / "outside"
        path.mkdir()
        os.chmod(path, 0o1777)
        return path
    return make


ESCAPES = ("open /etc/shadow", "open ../../etc/shadow", "open /proc/1/root/etc/shadow",
           "create outside (absolute)", "create outside (relative)", "create in the queue root",
           "create /etc/escaped", "setuid(0)", "seteuid(0)", "setgid(0)", "chroot(/)")


def test_jailed_smtpd_hook_cannot_read_shadow_write_outside_or_regain_root(mta_factory, outside):
    assert Path("/etc/shadow").exists()   # there is something to steal outside the jail
    mta = mta_factory(master_cf_text=JAILED_MASTER_CF, start=False)
    out = outside(mta)
    results = _run_jailed_probe(mta, out)

    owner = pwd.getpwnam(MAIL_OWNER)
    assert results["ids"] == [[owner.pw_uid] * 3, [owner.pw_gid] * 3, []]
    assert {"incoming", "tmp", "pid"} <= set(results["root_listing"])   # its / is the queue
    succeeded = {name: results[name] for name in ESCAPES if results[name] == "ok"}
    assert succeeded == {}, f"escapes that worked inside the jail: {succeeded}"
    assert list(out.iterdir()) == []
    assert not (mta.queue_dir / "escaped-root").exists()


def test_the_probe_sees_the_difference_without_the_jail(mta_factory, outside):
    """Control: with chroot n the same probe, still the mail owner, can write the world-writable
    directory outside the queue. So the jailed test passes because of the chroot, not because the
    probe is broken; and the drop alone still keeps /etc/shadow and root out of reach."""
    mta = mta_factory(master_cf_text=UNJAILED_MASTER_CF, start=False)
    out = outside(mta)
    results = _run_jailed_probe(mta, out)

    assert results["create outside (absolute)"] == "ok"
    assert results["open /etc/shadow"] == "EACCES"
    assert results["setuid(0)"] == "EPERM" and results["chroot(/)"] == "EPERM"
    assert [p.name for p in out.iterdir()] == ["escaped-absolute"]
