"""The queue directory layout: which subdirectories exist, their modes, and atomic moves between them.

SECURITY: trusts nothing but its own root path. Runs in the daemon after the privilege drop (as the
mail owner) and, for `ensure()`, once before it as root. It touches only files below the queue root;
queue ids are validated before they are used as file names, so a caller can never name a path
outside a queue subdirectory. `ensure()` as root changes owners and modes only through
O_NOFOLLOW directory fds: the mail owner cannot redirect it with a symlink.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from hardener.mta.safe_open import UnsafeFileError, open_dir

# Postfix's queues plus hardener's own: defer/ (per-message delivery state sidecars), tmp/
# (cleanup's files in progress), spool/ (Maildirs of local delivery), pid/ (the daemon's pid file
# and lock), public/ (pickup's submission socket).
QUEUE_NAMES = ("maildrop", "incoming", "active", "deferred", "hold", "corrupt")
ALL_DIRS = QUEUE_NAMES + ("defer", "tmp", "spool", "pid", "public")

# pid/ is root's and readable by all (Postfix: $queue_directory/pid:d:root:-:755), so `hardener
# mta status` works for anyone. public/ is root's, mode 0711: every local user can reach the
# pickup socket root binds there (Postfix: public:d:$mail_owner:$setgid_group:710, reached through
# the setgid postdrop), nobody else can list it or put a name in it. maildrop/ is the mail
# owner's like every other queue: only pickup writes it (pickup_socket.py), not the users.
MODES = {"pid": 0o755, "public": 0o711}
DEFAULT_MODE = 0o700
# Where root writes (master.pid, master.lock) or binds (public/pickup): owned by root when the
# daemon runs as root, never by the mail owner.
ROOT_OWNED = frozenset({"pid", "public"})


def dir_mode(name: str) -> int:
    """The mode queue subdirectory `name` has (ensure() sets it)."""
    return MODES.get(name, DEFAULT_MODE)

QUEUE_ID_RE = re.compile(r"[0-9A-F]{10,24}")


class QueueLayoutError(Exception):
    """The queue directory cannot be created, owned or used."""


def valid_queue_id(qid: str) -> bool:
    """True when `qid` is a well-formed queue id (uppercase hex, safe as a file name)."""
    return QUEUE_ID_RE.fullmatch(qid) is not None


def fsync_dir(path: Path) -> None:
    """fsync a directory so a rename or unlink in it is durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class QueueLayout:
    """The queue directory tree under `root` (main.cf queue_directory)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._dirs = {name: self.root / name for name in ALL_DIRS}

    def dir(self, name: str) -> Path:
        """Path of the queue subdirectory `name` (one of ALL_DIRS)."""
        try:
            return self._dirs[name]
        except KeyError:
            raise ValueError(f"unknown queue directory {name!r}") from None

    def path(self, name: str, qid: str) -> Path:
        """Path of queue file `qid` in queue `name`; refuses a malformed queue id."""
        if not valid_queue_id(qid):
            raise ValueError(f"malformed queue id {qid!r}")
        return self.dir(name) / qid

    def ensure(self, owner_uid: int | None = None, owner_gid: int | None = None) -> None:
        """Create the tree with Postfix's owners and modes; fix them on an existing tree.

        As root with the mail owner's uid/gid: the queue root and pid/ belong to root (mode 0755,
        as Postfix's postfix-files: root writes master.pid there, so no other user may plant a
        name in it), every other subdirectory to the mail owner. A pid/ left mail-owner-owned by
        an older version is handed back to root. Every directory is checked and changed through
        an O_NOFOLLOW|O_DIRECTORY fd (fchown/fchmod), so a symlink is refused, never followed.
        Refuses (QueueLayoutError) a root or subdirectory that is a symlink, not a directory, or
        (when not run as root) owned by somebody else.
        """
        as_root = owner_uid is not None and os.geteuid() == 0
        try:
            self.root.mkdir(mode=0o755, parents=True, exist_ok=True)
            root_fd = self._open_checked(self.root, None)
        except OSError as exc:
            raise QueueLayoutError(f"cannot set up queue directory {self.root}: "
                                   f"{exc.strerror}") from exc
        try:
            if as_root:
                os.fchown(root_fd, 0, 0)   # as Postfix: the queue root belongs to root
                mode = stat.S_IMODE(os.fstat(root_fd).st_mode)
                if mode & 0o022:   # nobody else may rename pid/ or plant a subdirectory
                    os.fchmod(root_fd, mode & ~0o022)
            for name in ALL_DIRS:
                path = self.root / name
                try:
                    try:
                        os.mkdir(name, dir_mode(name), dir_fd=root_fd)
                    except FileExistsError:
                        pass
                    fd = self._open_checked(name, root_fd, shown=path)
                    try:
                        if as_root:
                            uid, gid = (0, 0) if name in ROOT_OWNED else \
                                (owner_uid, owner_gid if owner_gid is not None else -1)
                            os.fchown(fd, uid, gid)
                        os.fchmod(fd, dir_mode(name))
                    finally:
                        os.close(fd)
                except OSError as exc:
                    raise QueueLayoutError(f"cannot set up {path}: {exc.strerror}") from exc
        finally:
            os.close(root_fd)

    @staticmethod
    def _open_checked(path: str | Path, dir_fd: int | None, shown: Path | None = None) -> int:
        """An O_NOFOLLOW directory fd; QueueLayoutError for a symlink, a non-directory or (not
        as root) a directory somebody else owns."""
        shown = shown or Path(path)
        try:
            fd = open_dir(path, dir_fd=dir_fd)
        except UnsafeFileError:
            raise QueueLayoutError(f"{shown} is not a directory (or is a symlink)") from None
        if os.geteuid() != 0:
            st = os.fstat(fd)
            if st.st_uid != os.geteuid():
                os.close(fd)
                raise QueueLayoutError(f"{shown} is owned by uid {st.st_uid}, not by this user")
        return fd

    def move(self, qid: str, src: str, dst: str) -> Path:
        """Rename queue file `qid` from queue `src` to `dst`, then fsync both directories."""
        target = self.path(dst, qid)
        os.rename(self.path(src, qid), target)
        fsync_dir(self.dir(dst))
        if src != dst:
            fsync_dir(self.dir(src))
        return target

    def list(self, name: str) -> list[str]:
        """Queue ids of the files in queue `name` (names that are not queue ids are skipped)."""
        try:
            entries = os.listdir(self.dir(name))
        except FileNotFoundError:
            return []
        return sorted(e for e in entries if valid_queue_id(e))
