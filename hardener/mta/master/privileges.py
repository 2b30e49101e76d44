"""The daemon skeleton's privileged steps, in one place: bind, (chroot), setgroups/setgid/setuid.

As Postfix's daemon skeleton: everything that needs root happens first (binding port 25, opening the
log file, reading root-only tables, creating the queue tree) in a pre-jail hook, then the process
drops to the mail owner for good and calls the post-jail hook. After `drop_privileges()` the process
cannot get root back (checked).

Chroot: Postfix chroots its network daemons into the queue directory. This part runs smtpd, cleanup
and qmgr in one Python process that re-reads main.cf on reload, imports modules lazily and resolves
users for local delivery, so a chroot would break those; `drop_privileges(chroot=...)` implements it
for the privilege-separated daemons of the next part, and the single-process daemon does not use it.

SECURITY: runs as root before the drop. Binds only the addresses the validated settings name.
"""

from __future__ import annotations

import os
import pwd
import signal
import socket
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from hardener.errors import ConfigError
from hardener.mta.config.settings import Listener

LISTEN_BACKLOG = 1024


def bind_listeners(listeners: Iterable[Listener]) -> list[tuple[Listener, socket.socket]]:
    """Bind and listen on every listener; ConfigError (closing what was opened) on failure."""
    bound: list[tuple[Listener, socket.socket]] = []
    try:
        for lst in listeners:
            family = socket.AF_INET6 if ":" in lst.address else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind((lst.address, lst.port))
                sock.listen(LISTEN_BACKLOG)
                sock.setblocking(False)
            except OSError as exc:
                sock.close()
                raise ConfigError(f"cannot listen on {lst.address}:{lst.port}: {exc.strerror}",
                                  file="master.cf", field=lst.service) from None
            bound.append((lst, sock))
    except ConfigError:
        for _, sock in bound:
            sock.close()
        raise
    return bound


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


def drop_privileges(user: str, *, chroot: str | None = None,
                    pre_jail: Callable[[], None] | None = None,
                    post_jail: Callable[[], None] | None = None) -> bool:
    """Run pre_jail, optionally chroot, become `user` for good, run post_jail.

    Returns True if privileges were dropped (we were root), False when not root (nothing to drop;
    the hooks still run). Raises RuntimeError if root could be regained afterwards.
    """
    if pre_jail is not None:
        pre_jail()
    if os.geteuid() != 0:
        if post_jail is not None:
            post_jail()
        return False
    uid, gid = owner_ids(user)
    if chroot:
        os.chroot(chroot)
        os.chdir("/")
    os.setgroups([gid])
    os.setgid(gid)
    os.setuid(uid)
    try:
        os.setuid(0)
    except PermissionError:
        pass
    else:
        raise RuntimeError("privilege drop failed: setuid(0) succeeded afterwards")
    if post_jail is not None:
        post_jail()
    return True


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


def set_parent_death_signal() -> None:
    """Ask the kernel to send this (child) process SIGTERM when its parent dies (Linux prctl),
    so a helper never outlives the daemon that forked it."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass
