"""The SASL credentials file of hardener's smtpd: user names and scrypt password hashes.

Format, one user per line (`#` comments and blank lines are ignored):

    alice:$scrypt$ln=15,r=8,p=3$<salt, base64>$<hash, base64>

The hash is scrypt (RFC 7914) in the PHC string format, with OWASP's current advice for scrypt
(Password Storage Cheat Sheet: N=2^17 r=8 p=1, or an equal-cost setting; hardener takes N=2^15
r=8 p=3, which costs the same CPU with a quarter of the memory, 32 MiB per check) and a 16-byte
random salt. No plaintext is ever written or logged; a password is compared only through its hash,
with hmac.compare_digest. A user who is not in the file costs the same work as one who is (a
check against a dummy hash), so the time of a reply does not tell which names exist.

The file belongs to root, group the mail owner's group, mode 0640: the daemon reads it as root
before the privilege drop, and again on reload (then through the group). A file that is a
symlink, has other links, is writable by the group or readable by others, or is not root's is
refused with one line naming it. `write_user`/`delete_user` rewrite it atomically: a new file
created O_EXCL|O_NOFOLLOW next to it, fsync, rename over it, fsync of the directory, all under an
exclusive lock of the directory, so two `hardener mta passwd` runs cannot lose an update.

SECURITY: read by root (and by the mail owner on reload); the scrypt parameters in the file are
bounded before use, so even a file edited by hand cannot make a check allocate more than
MAX_SCRYPT_MEMORY.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import hashlib
import hmac
import os
import re
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

from hardener.errors import ConfigError
from hardener.mta.safe_open import UnsafeFileError, create_exclusive, open_dir, open_regular

SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P = 15, 8, 3
SALT_BYTES, HASH_BYTES = 16, 32
MAX_SCRYPT_MEMORY = 64 << 20     # bytes one check may use (N=2^15, r=8 needs 32 MiB)
MAX_FILE_SIZE = 4 << 20          # bytes of the credentials file
MAX_USERS = 100_000
MAX_NAME_BYTES = 255             # a user name (RFC 4616 allows more; Postfix logs 100 characters)
MAX_PASSWORD_BYTES = 1024        # a password (RFC 4616's PLAIN message is 255 x 3 at most)
_HASH_RE = re.compile(r"\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]+={0,2})"
                      r"\$([A-Za-z0-9+/]+={0,2})")


class PasswordError(ValueError):
    """A user name or password hardener will not store (the message says why)."""


def check_name(name: str) -> str:
    """A user name as the file stores it: 1-255 bytes of UTF-8, no ':', whitespace or control
    characters (the file's separator and what a log line could be forged with)."""
    if not name or len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        raise PasswordError(f"a user name has 1 to {MAX_NAME_BYTES} bytes")
    if any(c == ":" or c.isspace() or not c.isprintable() for c in name):
        raise PasswordError("a user name has no ':', whitespace or control characters")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise PasswordError("a user name is UTF-8") from None
    return name


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _scrypt(password: bytes, salt: bytes, log_n: int, r: int, p: int, size: int) -> bytes:
    return hashlib.scrypt(password, salt=salt, n=1 << log_n, r=r, p=p, maxmem=MAX_SCRYPT_MEMORY,
                          dklen=size)


def hash_password(password: bytes, *, log_n: int = SCRYPT_LOG_N, r: int = SCRYPT_R,
                  p: int = SCRYPT_P) -> str:
    """The PHC string of a new scrypt hash of `password` with a fresh random salt."""
    if not password or len(password) > MAX_PASSWORD_BYTES:
        raise PasswordError(f"a password has 1 to {MAX_PASSWORD_BYTES} bytes")
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, log_n, r, p, HASH_BYTES)
    return f"$scrypt$ln={log_n},r={r},p={p}${_b64(salt)}${_b64(digest)}"


@dataclass(frozen=True)
class _Hash:
    """A parsed, bounded scrypt hash."""

    log_n: int
    r: int
    p: int
    salt: bytes
    digest: bytes

    @classmethod
    def parse(cls, text: str) -> "_Hash":
        match = _HASH_RE.fullmatch(text)
        if match is None:
            raise ValueError("not an scrypt hash ($scrypt$ln=N,r=R,p=P$SALT$HASH)")
        log_n, r, p = (int(match.group(i)) for i in (1, 2, 3))
        if not (10 <= log_n <= 20 and 1 <= r <= 32 and 1 <= p <= 16):
            raise ValueError(f"scrypt parameters out of bounds (ln {log_n}, r {r}, p {p})")
        if 128 * r * (1 << log_n) > MAX_SCRYPT_MEMORY // 2:
            raise ValueError(f"scrypt parameters need more than {MAX_SCRYPT_MEMORY >> 21} MiB")
        try:
            salt = base64.b64decode(match.group(4), validate=True)
            digest = base64.b64decode(match.group(5), validate=True)
        except binascii.Error:
            raise ValueError("bad base64 in the hash") from None
        if len(salt) < 8 or not 16 <= len(digest) <= 64:
            raise ValueError("salt or hash too short")
        return cls(log_n, r, p, salt, digest)

    def matches(self, password: bytes) -> bool:
        candidate = _scrypt(password[:MAX_PASSWORD_BYTES], self.salt, self.log_n, self.r, self.p,
                            len(self.digest))
        return hmac.compare_digest(candidate, self.digest)


@dataclass
class Credentials:
    """The users of one credentials file (empty when the file does not exist)."""

    path: Path
    users: dict[str, _Hash] = field(default_factory=dict)
    _dummy: _Hash = field(default_factory=lambda: _Hash.parse(hash_password(
        secrets.token_bytes(16))))

    def verify(self, name: str, password: bytes) -> bool:
        """True when `name` exists and `password` is its password. Takes the same scrypt work
        for an unknown name (a dummy hash); blocking: call it from a worker thread."""
        entry = self.users.get(name)
        ok = (entry or self._dummy).matches(password)
        return ok and entry is not None

    def __len__(self) -> int:
        return len(self.users)


def _refuse(path: Path, message: str, line: int | None = None) -> ConfigError:
    return ConfigError(message, file=str(path), line=line)


def check_file_mode(st: os.stat_result, path: Path) -> None:
    """Refuse a credentials file that is not root's or that others could read or anyone but
    root could write (ConfigError naming the file)."""
    if st.st_uid != 0:
        raise _refuse(path, f"owned by uid {st.st_uid}, not root (refused: chown root FILE)")
    if st.st_mode & 0o027:
        raise _refuse(path, f"mode {stat.S_IMODE(st.st_mode):04o} lets the group write or "
                            "others read it (refused: chmod 0640 FILE)")


def _read(path: Path) -> bytes | None:
    """The file's bytes after the ownership/mode checks; None when it does not exist."""
    try:
        fd = open_regular(path)
    except FileNotFoundError:
        return None
    except UnsafeFileError as exc:
        raise _refuse(path, f"{exc.strerror}") from None
    except OSError as exc:
        raise _refuse(path, f"cannot open: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        check_file_mode(st, path)
        if st.st_size > MAX_FILE_SIZE:
            raise _refuse(path, f"larger than {MAX_FILE_SIZE} bytes")
        chunks, total = [], 0
        while total <= MAX_FILE_SIZE:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > MAX_FILE_SIZE:
            raise _refuse(path, f"larger than {MAX_FILE_SIZE} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _parse(path: Path, data: bytes) -> dict[str, str]:
    """name -> hash text, in file order; ConfigError with the line for anything malformed."""
    entries: dict[str, str] = {}
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _refuse(path, "not UTF-8") from None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, hashed = line.partition(":")
        if not sep:
            raise _refuse(path, "expected NAME:HASH", number)
        try:
            check_name(name)
            _Hash.parse(hashed)
        except ValueError as exc:
            raise _refuse(path, str(exc), number) from None
        if name in entries:
            raise _refuse(path, f"user {name!r} listed twice", number)
        entries[name] = hashed
        if len(entries) > MAX_USERS:
            raise _refuse(path, f"more than {MAX_USERS} users", number)
    return entries


def load_credentials(path: str | os.PathLike[str]) -> Credentials:
    """Read and check the credentials file (ConfigError naming file and line); a missing file
    gives no users."""
    path = Path(path)
    data = _read(path)
    entries = _parse(path, data) if data is not None else {}
    return Credentials(path, {name: _Hash.parse(h) for name, h in entries.items()})


def _write(dfd: int, name: str, entries: dict[str, str], gid: int) -> None:
    """Replace `name` in the directory open at `dfd` atomically with `entries` (root:gid 0640);
    the caller holds the lock."""
    body = "".join(f"{user}:{hashed}\n" for user, hashed in entries.items())
    header = ("# SASL users of hardener's smtpd (scrypt hashes). Managed by `hardener mta passwd`;"
              " do not edit.\n")
    data = (header + body).encode("utf-8")
    tmp = f".{name}.{secrets.token_hex(8)}.tmp"
    fd = create_exclusive(tmp, 0o600, dir_fd=dfd)
    try:
        try:
            os.fchown(fd, 0, gid)
            os.fchmod(fd, 0o640)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dfd)
        except FileNotFoundError:
            pass
        raise
    os.fsync(dfd)


def _locked_update(path: Path, change, gid: int) -> bool:
    """Apply change(entries) -> bool under an exclusive lock of the file's directory; writes the
    file when change returns True. The directory must not be writable by group or others."""
    try:
        dfd = open_dir(path.parent)
    except OSError as exc:
        raise _refuse(path.parent, f"cannot open the directory: {exc.strerror}") from None
    try:
        st = os.fstat(dfd)
        if st.st_uid != os.geteuid() or st.st_mode & 0o022:
            raise _refuse(path.parent, "a directory another user owns or can write (refused)")
        fcntl.flock(dfd, fcntl.LOCK_EX)
        data = _read(path)
        entries = _parse(path, data) if data is not None else {}
        changed = change(entries)
        if changed:
            _write(dfd, path.name, entries, gid)   # in the directory checked and locked here
        return changed
    finally:
        os.close(dfd)   # releases the lock


def write_user(path: str | os.PathLike[str], name: str, password: bytes, gid: int) -> None:
    """Add `name` or change its password (PasswordError for an unusable name or password)."""
    check_name(name)
    hashed = hash_password(password)

    def change(entries: dict[str, str]) -> bool:
        entries[name] = hashed
        return True
    _locked_update(Path(path), change, gid)


def delete_user(path: str | os.PathLike[str], name: str, gid: int) -> bool:
    """Remove `name`; False when it was not there (nothing written)."""
    def change(entries: dict[str, str]) -> bool:
        return entries.pop(name, None) is not None
    return _locked_update(Path(path), change, gid)
