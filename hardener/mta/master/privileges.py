"""The daemon skeleton's privileged steps, in one place: bind, chroot, setgroups/setgid/setuid.

As Postfix's daemon skeleton (single_server.c, event_server.c): everything that needs root happens
first in a pre-jail hook (binding port 25 is the master's, opening the log file, loading the TLS
key, reading /etc/hosts, the time zone and tables), then `enter_jail()` chroots into the queue
directory when master.cf's chroot column says y, drops to the mail owner for good (setgroups([]),
setgid, setuid), checks that root cannot be regained, sets PR_SET_NO_NEW_PRIVS (no setuid program
or file capability can ever give it rights again) and calls the post-jail hook. After the drop the
kernel has cleared every capability (all three uids are non-zero and SECBIT_KEEP_CAPS is unset).

Time zone in the jail: glibc reads /etc/localtime (or $TZ's file) once, at the first tzset(); the
pre-jail step calls it, so local times stay right inside a jail that has no /etc (Postfix's
postfix-script copies /etc/localtime into the jail instead; both give the same result until the
zone file changes, which a restart picks up).

SECURITY: runs as root before the drop. Binds only the addresses the validated settings name.
"""

from __future__ import annotations

import ctypes
import os
import pwd
import signal
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from hardener.errors import ConfigError
from hardener.mta.config.settings import Listener

LISTEN_BACKLOG = 1024
_PR_SET_NO_NEW_PRIVS = 38


def bind_listeners(listeners: Iterable[Listener]) -> list[tuple[Listener, socket.socket]]:
    """Bind and listen on every listener; ConfigError (closing what was opened) on failure."""
    bound: list[tuple[Listener, socket.socket]] = []
    try:
        for lst in listeners:
            try:
                sock = listening_socket(lst.address, lst.port)
            except OSError as exc:
                raise ConfigError(f"cannot listen on {lst.address}:{lst.port}: {exc.strerror}",
                                  file="master.cf", field=lst.service) from None
            bound.append((lst, sock))
    except ConfigError:
        for _, sock in bound:
            sock.close()
        raise
    return bound


def listening_socket(address: str, port: int, backlog: int = LISTEN_BACKLOG) -> socket.socket:
    """A non-blocking TCP socket bound to address:port and listening (IPv6: v6 only); OSError
    (nothing left open) on failure."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((address, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def owner_ids(user: str) -> tuple[int, int]:
    """(uid, gid) of the mail owner; ConfigError when the user does not exist or is root."""
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        raise ConfigError(f"no such user {user!r}", field="mail_owner") from None
    if pw.pw_uid == 0 or pw.pw_gid == 0:
        raise ConfigError(f"mail_owner {user!r} must not be root or in group 0",
                          field="mail_owner")
    return pw.pw_uid, pw.pw_gid


def drop_privileges(user: str, *, chroot: str | os.PathLike[str] | None = None,
                    pre_jail: Callable[[], None] | None = None,
                    post_jail: Callable[[], None] | None = None) -> bool:
    """Run pre_jail, optionally chroot into `chroot`, become `user` for good, run post_jail.

    Returns True if privileges were dropped (we were root), False when not root (nothing to drop;
    no chroot either; the hooks still run). Raises RuntimeError if root (uid or gid 0) could be
    regained afterwards.
    """
    if pre_jail is not None:
        pre_jail()
    load_time_zone()
    if os.geteuid() != 0:
        if post_jail is not None:
            post_jail()
        return False
    uid, gid = owner_ids(user)
    death_signal = parent_death_signal()
    if chroot:
        os.chroot(chroot)
        os.chdir("/")
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    _check_dropped(uid, gid)
    set_no_new_privs()
    if death_signal:   # the kernel clears it when the credentials change: arm it again
        set_parent_death_signal(death_signal)
    if post_jail is not None:
        post_jail()
    return True


def _check_dropped(uid: int, gid: int) -> None:
    """RuntimeError unless all uids and gids are the mail owner's and root cannot come back."""
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid) or os.getgroups():
        raise RuntimeError("privilege drop failed: ids or groups not changed")
    for regain in (lambda: os.setuid(0), lambda: os.seteuid(0), lambda: os.setgid(0)):
        try:
            regain()
        except PermissionError:
            continue
        raise RuntimeError("privilege drop failed: root could be regained")


def load_time_zone() -> None:
    """Load the local time zone now (before a chroot hides /etc/localtime; see the docstring)."""
    time.tzset()
    time.localtime()


def set_no_new_privs() -> None:
    """prctl(PR_SET_NO_NEW_PRIVS, 1): execve can never grant privileges to this process again.
    RuntimeError if the kernel refuses (it has since Linux 3.5)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise RuntimeError(f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(ctypes.get_errno())}")


@contextmanager
def acting_as(uid: int, gid: int) -> Iterator[None]:
    """Within the block, hold only `uid`'s and `gid`'s rights (effective ids, groups [gid]); root
    gets them back after. A no-op unless running as root with a non-root `uid`.

    For tools root runs on a tree another user owns, as Postfix's postsuper runs as the mail owner:
    the kernel then refuses whatever a link planted in that tree points at (root's own files), so
    a queue tool cannot be made to read, touch or overwrite them. Not a sandbox for code: the saved
    uid stays 0 (and the process is not ptrace-able by `uid`, whose real uid it does not share).
    """
    if os.geteuid() != 0 or uid == 0:
        yield
        return
    groups, egid = os.getgroups(), os.getegid()
    os.setgroups([gid])
    os.setegid(gid)
    os.seteuid(uid)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(egid)
        os.setgroups(groups)


def set_parent_death_signal(signum: int = signal.SIGTERM) -> None:
    """Ask the kernel to send this (child) process `signum` when its parent dies (Linux prctl),
    so a helper never outlives the daemon that forked it. A change of credentials (setuid) clears
    it: drop_privileges arms it again."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signum))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def parent_death_signal() -> int:
    """The signal this process gets when its parent dies (0: none), PR_GET_PDEATHSIG."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        value = ctypes.c_int(0)
        if libc.prctl(2, ctypes.byref(value)) == 0:  # PR_GET_PDEATHSIG
            return value.value
    except (OSError, AttributeError):
        pass
    return 0


def set_process_name(name: str) -> None:
    """Name this process `name` in /proc/PID/comm (prctl PR_SET_NAME, 15 bytes), as Postfix's
    processes are named by their program: ps and the tests tell master, smtpd and qmgr apart."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(15, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass
