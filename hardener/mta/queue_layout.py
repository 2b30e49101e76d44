"""The queue directory layout: which subdirectories exist, their modes, and atomic moves between them.

SECURITY: trusts nothing but its own root path. Runs in the daemon after the privilege drop (as the
mail owner) and, for `ensure()`, once before it as root. It touches only files below the queue root;
queue ids are validated before they are used as file names, so a caller can never name a path
outside a queue subdirectory.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# Postfix's queues plus hardener's own: defer/ (per-message delivery state sidecars), tmp/
# (cleanup's files in progress), spool/ (Maildirs of local delivery), pid/ (the daemon's pid file).
QUEUE_NAMES = ("maildrop", "incoming", "active", "deferred", "hold", "corrupt")
ALL_DIRS = QUEUE_NAMES + ("defer", "tmp", "spool", "pid")

# maildrop/ takes local submissions from any user (as Postfix's maildrop with the setgid postdrop
# program); the rest are private to the mail owner.
_MODES = {"maildrop": 0o1733}
_DEFAULT_MODE = 0o700

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
        """Create the tree with safe modes, owned by the mail owner when uid/gid are given.

        Refuses (QueueLayoutError) a root or subdirectory that is a symlink, not a directory, or
        (when not run as root) owned by somebody else.
        """
        try:
            self.root.mkdir(mode=0o755, parents=True, exist_ok=True)
            self._check_dir(self.root, owner_uid)
            if owner_uid is not None and os.geteuid() == 0:
                os.chown(self.root, 0, 0)  # as Postfix: the queue root belongs to root
            for name in ALL_DIRS:
                path = self.root / name
                mode = _MODES.get(name, _DEFAULT_MODE)
                if not path.exists() and not path.is_symlink():
                    path.mkdir(mode=mode)
                self._check_dir(path, owner_uid)
                if owner_uid is not None and os.geteuid() == 0:
                    os.chown(path, owner_uid, owner_gid if owner_gid is not None else -1)
                os.chmod(path, mode)
        except OSError as exc:
            raise QueueLayoutError(f"cannot set up queue directory {self.root}: {exc.strerror}") from exc

    @staticmethod
    def _check_dir(path: Path, owner_uid: int | None) -> None:
        if path.is_symlink() or not path.is_dir():
            raise QueueLayoutError(f"{path} is not a directory (or is a symlink)")
        if os.geteuid() != 0:
            st = path.stat()
            if st.st_uid != os.geteuid():
                raise QueueLayoutError(f"{path} is owned by uid {st.st_uid}, not by this user")

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
