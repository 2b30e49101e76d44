"""Counters for the opt-in Prometheus endpoint: what each process counts, and where it keeps it.

Postfix has no metrics; hardener's are switched on by its own main.cf parameter
`hardener_metrics_listen` (empty: off, the default). Counting happens in several processes (smtpd,
the qmgr child with the delivery agents, and whatever processes the supervisor starts), so each
process keeps its counters in a file of its own in `queue_directory/metrics/` and the endpoint
process (hardener.mta.master.metrics_endpoint) adds the files up when it is scraped:

* The master opens the directory once, as root, before it forks (`enable`); every child inherits
  that directory fd and creates its file through it (openat), so a chrooted process counts as well
  as one that is not, and no path is resolved after the jail closes.
* A process's file is created on its first count: O_EXCL|O_NOFOLLOW under a temporary name, locked
  with flock(LOCK_EX) for the life of the process, then renamed to `w.<random>`. The endpoint tells a
  live file (lock held) from one whose process has gone (lock free) without /proc, inside a chroot.
* The file is a fixed 64 KiB mmap: a header with the number of bytes used, then entries
  (key length, key, an 8-byte-aligned int64). A count is one aligned 8-byte store; a new key is
  written before the header grows over it, so a reader sees whole entries only.
* Keys follow SCHEMA (metric name and its label names); label values are reduced to a safe
  charset and length, so a file holds a bounded set of series.

Root never counts (`inc` is a no-op there): root does not create files in the mail owner's
directory. Counting is a no-op too when metrics are off (no `enable`).

SECURITY: the files are written by processes that read client input (smtpd) and are read by the
endpoint, which runs as the same mail owner; `read_counter_file` parses them with bounds and
rejects anything malformed (MetricsFileError) instead of trusting it.
"""

from __future__ import annotations

import fcntl
import ipaddress
import mmap
import os
import re
import secrets
import struct
import threading
from dataclasses import dataclass

from hardener.errors import ConfigError
from hardener.mta.maillog import get_logger
from hardener.postfix.maincf import MainCf

PARAMETER = "hardener_metrics_listen"
DEFAULT_ADDRESS = "127.0.0.1"
METRICS_DIR = "metrics"           # below queue_directory

FILE_SIZE = 64 * 1024
MAGIC = b"HMETRIC1"
_HEADER = struct.Struct("<8sII")  # magic, bytes used, reserved
_KEYLEN = struct.Struct("<H")
_VALUE = struct.Struct("<q")
MAX_KEY = 200
LIVE_PREFIX = "w."
TEMP_PREFIX = "t."

# metric name -> (help text, label names). The endpoint exposes exactly these.
SCHEMA: dict[str, tuple[str, tuple[str, ...]]] = {
    "hardener_smtpd_connections_total":
        ("SMTP connections smtpd accepted, per master.cf service", ("service",)),
    "hardener_smtpd_messages_accepted_total":
        ("Messages smtpd queued (250 after DATA), per master.cf service", ("service",)),
    "hardener_smtpd_rejects_total":
        ("Commands smtpd rejected (4xx/5xx logged as 'reject:'), by Postfix's reject class",
         ("reason",)),
    "hardener_delivery_recipients_total":
        ("Recipient delivery attempts by result (the status= of the log line: sent, deferred, "
         "bounced) and transport", ("status", "transport")),
}

# Postfix's reject classes, recognised in the reply texts smtpd sends (pflogsumm groups them the
# same way). First match wins: the pipelining text comes with a '... command rejected' prefix.
_REASONS: tuple[tuple[str, str], ...] = (
    ("Improper use of SMTP command pipelining", "unauth_pipelining"),
    ("Relay access denied", "relay_denied"),
    ("User unknown", "unknown_user"),
    ("Recipient address rejected", "recipient_rejected"),
    ("Sender address rejected", "sender_rejected"),
    ("Client host rejected", "client_rejected"),
    ("Helo command rejected", "helo_rejected"),
    ("Data command rejected", "data_rejected"),
    ("Message size exceeds fixed limit", "message_too_big"),
    ("message file too big", "message_too_big"),
    ("Insufficient system storage", "insufficient_storage"),
    ("bare <LF> received", "bare_newline"),
    ("bare <CR> received", "bare_newline"),
    ("queue file write error", "queue_write_error"),
)
REASONS = tuple(sorted({r for _, r in _REASONS} | {"other"}))
_LABEL_VALUE = re.compile(r"[^A-Za-z0-9_.:\-\[\]]")
MAX_LABEL = 64


class MetricsFileError(Exception):
    """A counter file that is not one this module wrote (wrong size, magic or entry)."""


# ---- configuration -------------------------------------------------------------------------

@dataclass(frozen=True)
class MetricsConfig:
    """Where the endpoint listens (hardener_metrics_listen)."""

    address: str
    port: int

    @property
    def loopback(self) -> bool:
        """True when only this machine can reach the endpoint."""
        return ipaddress.ip_address(self.address).is_loopback

    @property
    def shown(self) -> str:
        """ADDR:PORT as written in the log ([v6]:port)."""
        return f"[{self.address}]:{self.port}" if ":" in self.address else \
            f"{self.address}:{self.port}"


def parse_listen(value: str) -> MetricsConfig | None:
    """`PORT` (loopback), `ADDR:PORT` or `[V6ADDR]:PORT`; None for an empty value (off).
    ValueError with what is wrong; an address must be written as an IP address, not a name."""
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        host, port_text = DEFAULT_ADDRESS, text
    elif text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
        if not sep:
            raise ValueError(f"expected [ADDRESS]:PORT, not {value!r}")
        if ":" not in host:
            raise ValueError(f"brackets are for IPv6 addresses, not {host!r}")
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or ":" in host:
            raise ValueError(f"expected PORT, ADDRESS:PORT or [IPV6]:PORT, not {value!r}")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"port must be a number from 1 to 65535, not {port_text!r}")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{host!r} is not an IP address") from None
    if address.is_multicast:
        raise ValueError(f"{host} is a multicast address")
    return MetricsConfig(str(address), int(port_text))


def load_config(main: MainCf) -> MetricsConfig | None:
    """hardener_metrics_listen from main.cf; ConfigError naming file, line and field."""
    if not main.is_set(PARAMETER):
        return None
    try:
        return parse_listen(main.get(PARAMETER))
    except ValueError as exc:
        loc = main.location(PARAMETER)
        raise ConfigError(str(exc), file=loc.file if loc else main.filename,
                          line=loc.line if loc else None, field=PARAMETER) from None


# ---- keys ----------------------------------------------------------------------------------

def reject_reason(reply: str) -> str:
    """Postfix's reject class of an smtpd reply ('554 5.7.1 <a@b>: Relay access denied' ->
    'relay_denied'); 'other' for a reply no class names."""
    for marker, reason in _REASONS:
        if marker in reply:
            return reason
    return "other"


def label_value(value: str) -> str:
    """A label value as stored: safe characters only, at most MAX_LABEL of them."""
    return _LABEL_VALUE.sub("_", value)[:MAX_LABEL] or "_"


def series_key(metric: str, labels: dict[str, str]) -> str:
    """The stored key of one series: 'name|label=value|...' in SCHEMA's label order."""
    names = SCHEMA[metric][1]
    if set(labels) != set(names):
        raise ValueError(f"{metric} takes labels {names}, not {tuple(labels)}")
    return "|".join([metric, *(f"{n}={label_value(labels[n])}" for n in names)])


def parse_key(key: str) -> tuple[str, tuple[str, ...]] | None:
    """(metric, label values) of a stored key; None when it does not follow SCHEMA."""
    metric, *parts = key.split("|")
    if metric not in SCHEMA:
        return None
    names = SCHEMA[metric][1]
    if len(parts) != len(names):
        return None
    values = []
    for name, part in zip(names, parts):
        got, sep, value = part.partition("=")
        if got != name or not sep or value != label_value(value):
            return None
        values.append(value)
    return metric, tuple(values)


# ---- the per-process file ------------------------------------------------------------------

def _align8(n: int) -> int:
    return (n + 7) & ~7


class CounterFile:
    """This process's counters in its own locked, mmapped file (see the module docstring)."""

    def __init__(self, dir_fd: int) -> None:
        self.pid = os.getpid()
        self._offsets: dict[str, int] = {}
        self._lock = threading.Lock()
        self.dropped = 0
        token = secrets.token_hex(8)
        temp, final = f"{TEMP_PREFIX}{token}", f"{LIVE_PREFIX}{token}"
        fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=dir_fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.ftruncate(fd, FILE_SIZE)
            self._map = mmap.mmap(fd, FILE_SIZE)
            _HEADER.pack_into(self._map, 0, MAGIC, _HEADER.size, 0)
            os.rename(temp, final, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            os.close(fd)
            try:
                os.unlink(temp, dir_fd=dir_fd)
            except OSError:
                pass
            raise
        self._fd = fd
        self._used = _HEADER.size
        self.name = final

    def add(self, key: str, amount: int = 1) -> None:
        """Add `amount` to series `key` (created on first use; dropped when the file is full)."""
        with self._lock:
            offset = self._offsets.get(key)
            if offset is None:
                offset = self._append(key)
                if offset is None:
                    self.dropped += 1
                    return
            value, = _VALUE.unpack_from(self._map, offset)
            _VALUE.pack_into(self._map, offset, value + amount)

    def _append(self, key: str) -> int | None:
        data = key.encode("ascii")[:MAX_KEY]
        start = self._used
        offset = _align8(start + _KEYLEN.size + len(data))
        end = offset + _VALUE.size
        if end > FILE_SIZE:
            return None
        _KEYLEN.pack_into(self._map, start, len(data))
        self._map[start + _KEYLEN.size:start + _KEYLEN.size + len(data)] = data
        _VALUE.pack_into(self._map, offset, 0)
        # the entry is complete before the header covers it: a reader never sees half of one
        _HEADER.pack_into(self._map, 0, MAGIC, end, 0)
        self._used = end
        self._offsets[key] = offset
        return offset

    def close(self) -> None:
        """Unmap and close (the lock goes with the last fd: the endpoint may then merge it)."""
        self._map.close()
        os.close(self._fd)


def read_counter_file(fd: int) -> dict[str, int]:
    """The series of a counter file open at `fd`: key -> value, keys checked against SCHEMA.
    MetricsFileError for a file that is not a complete counter file."""
    st = os.fstat(fd)
    if st.st_size != FILE_SIZE:
        raise MetricsFileError(f"size {st.st_size}, not {FILE_SIZE}")
    data = os.pread(fd, FILE_SIZE, 0)
    if len(data) != FILE_SIZE:
        raise MetricsFileError("short read")
    magic, used, _ = _HEADER.unpack_from(data, 0)
    if magic != MAGIC or not _HEADER.size <= used <= FILE_SIZE:
        raise MetricsFileError("bad header")
    values: dict[str, int] = {}
    pos = _HEADER.size
    while pos < used:
        length, = _KEYLEN.unpack_from(data, pos)
        offset = _align8(pos + _KEYLEN.size + length)
        if length == 0 or length > MAX_KEY or offset + _VALUE.size > used:
            raise MetricsFileError(f"bad entry at byte {pos}")
        try:
            key = data[pos + _KEYLEN.size:pos + _KEYLEN.size + length].decode("ascii")
        except UnicodeDecodeError:
            raise MetricsFileError(f"bad key at byte {pos}") from None
        value, = _VALUE.unpack_from(data, offset)
        if parse_key(key) is None or value < 0:
            raise MetricsFileError(f"bad series {key!r}")
        values[key] = values.get(key, 0) + value
        pos = offset + _VALUE.size
    return values


# ---- the process-wide counting API ------------------------------------------------------------

_dir_fd: int | None = None
_file: CounterFile | None = None
_file_lock = threading.Lock()
_failed = False


def enable(dir_fd: int) -> None:
    """Count into the directory open at `dir_fd` (the master, before it forks; children inherit
    the fd). The module keeps the fd open for the life of the process."""
    global _dir_fd
    _dir_fd = dir_fd


def disable() -> None:
    """Stop counting in this process (its file, if any, is closed: the endpoint merges it)."""
    global _dir_fd, _file
    if _file is not None:
        _file.close()
    _dir_fd, _file = None, None


def enabled() -> bool:
    """True when this process counts (metrics on)."""
    return _dir_fd is not None


def _forget_after_fork() -> None:
    """In a forked child: never write the parent's file; the child opens its own on first count.
    Its copy of the parent's fd is closed (the parent still holds the lock)."""
    global _file, _failed, _file_lock
    _file_lock = threading.Lock()
    if _file is not None:
        try:
            _file.close()
        except (OSError, ValueError):
            pass
    _file, _failed = None, False


os.register_at_fork(after_in_child=_forget_after_fork)


def inc(metric: str, amount: int = 1, **labels: str) -> None:
    """Add `amount` to `metric`{labels}; a no-op when metrics are off or when running as root.
    Never raises for an I/O problem (counting must not cost a session): it stops counting."""
    global _file, _failed
    if _dir_fd is None or _failed:
        return
    if _file is None:
        if os.geteuid() == 0:
            return
        with _file_lock:
            if _file is None and not _failed:
                try:
                    _file = CounterFile(_dir_fd)
                except OSError as exc:
                    _failed = True
                    get_logger("metrics").warning(
                        f"cannot create a counter file, not counting: {exc.strerror}")
                    return
    _file.add(series_key(metric, labels), amount)


def count_connection(service: str) -> None:
    """smtpd accepted a connection on `service`."""
    inc("hardener_smtpd_connections_total", service=service)


def count_accepted(service: str) -> None:
    """smtpd queued a message (sent its 250 after DATA)."""
    inc("hardener_smtpd_messages_accepted_total", service=service)


def count_reject(reply: str) -> None:
    """smtpd logged a 'reject:' with this reply."""
    inc("hardener_smtpd_rejects_total", reason=reject_reason(reply))


def count_delivery(status: str, transport: str) -> None:
    """A delivery agent's result for one recipient (status sent, deferred or bounced)."""
    inc("hardener_delivery_recipients_total", status=status, transport=transport)
