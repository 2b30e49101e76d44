"""Opening files where somebody else may have planted a link: Postfix's safe_open() for hardener.

Every file a root process creates or opens in a directory another user can write (the queue tree,
whose subdirectories belong to the mail owner; maildrop/, which every local user writes; a log
directory) goes through here:

- nothing follows a symbolic link in the last component (O_NOFOLLOW): a link planted by the mail
  owner at a name root is about to open is refused, never written through;
- new files are created with O_EXCL, so a planted link, FIFO or hard link makes the create fail
  instead of being reused (a stale temporary name is unlinked first: unlink removes the link,
  never its target);
- an existing file must be a regular file with one link (a hard link to /etc/shadow, which a
  host without fs.protected_hardlinks lets anyone make, is refused, as Postfix's safe_open does);
- opens never block on a planted FIFO (O_NONBLOCK) and never leak into a child (O_CLOEXEC);
- directories are opened with O_DIRECTORY|O_NOFOLLOW and used as dir_fd, so the checks apply to
  the very directory that was checked, not to whatever a path names a moment later.

SECURITY: used by root before and after the privilege drop; trusts no name it is given.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

_BASE = os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafeFileError(OSError):
    """A path that is a symlink, not a regular file, or has more than one link: refused."""


def _refused(path: str | os.PathLike[str], err: int, what: str) -> UnsafeFileError:
    return UnsafeFileError(err, what, os.fspath(path))


def open_dir(path: str | os.PathLike[str], *, dir_fd: int | None = None) -> int:
    """A directory fd for `path`; UnsafeFileError when it is a symlink or not a directory."""
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | _BASE, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ENOTDIR, errno.ELOOP):
            raise _refused(path, exc.errno, "a symbolic link or not a directory (refused)") \
                from None
        raise


def check_regular(fd: int, path: str | os.PathLike[str]) -> os.stat_result:
    """fstat `fd`; UnsafeFileError (fd left open) unless a regular file with exactly one link."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise _refused(path, errno.EPERM, "not a regular file (refused)")
    if st.st_nlink != 1:
        raise _refused(path, errno.EPERM, f"a file with {st.st_nlink} hard links (refused)")
    return st


def open_regular(path: str | os.PathLike[str], flags: int = os.O_RDONLY, *,
                 dir_fd: int | None = None) -> int:
    """Open an existing regular file (not a symlink, one link); UnsafeFileError otherwise."""
    try:
        fd = os.open(path, flags | _BASE | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _refused(path, exc.errno, "a symbolic link (refused)") from None
        if exc.errno == errno.ENXIO:   # a FIFO nobody reads, opened for writing
            raise _refused(path, exc.errno, "not a regular file (refused)") from None
        raise
    try:
        check_regular(fd, path)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def create_exclusive(path: str | os.PathLike[str], mode: int, *, dir_fd: int | None = None,
                     flags: int = os.O_WRONLY) -> int:
    """Create a new file (O_CREAT|O_EXCL|O_NOFOLLOW); FileExistsError if anything is there."""
    return os.open(path, flags | os.O_CREAT | os.O_EXCL | _BASE, mode, dir_fd=dir_fd)


def open_append(path: str | os.PathLike[str], mode: int = 0o600) -> int:
    """Open a log file for appending, creating it with `mode` if missing (Postfix's logwriter:
    safe_open(O_CREAT|O_WRONLY|O_APPEND, 0600)); an existing one must be a regular file with one
    link and no symlink. Returns the fd."""
    flags = os.O_WRONLY | os.O_APPEND
    for _ in range(3):   # bounded: another process may create or remove it between the tries
        try:
            return open_regular(path, flags)
        except FileNotFoundError:
            pass
        try:
            fd = create_exclusive(path, mode, flags=flags)
        except FileExistsError:
            continue
        os.fchmod(fd, mode)   # whatever the umask
        return fd
    raise _refused(path, errno.EAGAIN, "keeps appearing and disappearing (refused)")


def replace_file(directory: str | os.PathLike[str], name: str, data: bytes, mode: int) -> None:
    """Write `data` to directory/name atomically (replace_at). `directory` must belong to this
    user and be writable by nobody else."""
    dfd = open_dir(directory)
    try:
        st = os.fstat(dfd)
        if st.st_uid != os.geteuid() or st.st_mode & 0o022:
            raise _refused(directory, errno.EPERM,
                           "a directory another user owns or can write (refused)")
        replace_at(dfd, name, data, mode)
    finally:
        os.close(dfd)


def replace_at(dir_fd: int, name: str, data: bytes, mode: int) -> None:
    """Write `data` to `name` in the directory open at `dir_fd` atomically: a fresh temporary file
    (O_EXCL, after unlinking a stale one), fsync, rename over `name` (a symlink at `name` is
    replaced, not followed), fsync the directory. Callers serialise writers of one name."""
    tmp = f"{Path(name).stem}.tmp"
    try:
        os.unlink(tmp, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    fd = create_exclusive(tmp, mode, dir_fd=dir_fd)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fchmod(fd, mode)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    os.fsync(dir_fd)
