"""The Prometheus endpoint: a small child process that adds up the counter files and sizes the queues.

Started by the master only when main.cf sets `hardener_metrics_listen` (hardener.mta.metrics), as
one of the children it starts, watches and restarts (`children`). The master opens
`queue_directory/metrics/` and the queue root as root before its other children start; the child
closes the SMTP listeners it inherited, binds its own socket while still root, drops to the mail
owner, chroots into the queue directory and serves `GET /metrics` (prometheus_client's text
format, version 0.0.4).

On each scrape (MetricsCollector.collect):
* counters: every `w.*` file in metrics/ is read (hardener.mta.metrics.read_counter_file). A file
  whose flock is free belongs to a process that has gone: its values are merged into
  `archive.json` and the file removed, so the number of files stays bounded by the number of live
  processes. The archive names the files it merged until they are gone, so a crash between
  writing the archive and unlinking a file never counts that file twice. Counts survive restarts of
  children and of the daemon (a Prometheus counter may also start again from 0: rate() copes).
* queues: incoming, active, deferred, hold and maildrop are listed (names only, never a file
  opened or stat'ed), at most MAX_QUEUE_SCAN names each; the oldest message's age comes from the
  time in its queue id (the first 12 hex digits: microseconds, as cleanup.service.new_queue_id and
  pickup.new_maildrop_name write them), because a deferred file's mtime is its next try.

SECURITY: reads HTTP requests from whoever can reach the address (loopback unless main.cf names
another): request head at most MAX_REQUEST bytes within REQUEST_TIMEOUT, MAX_CLIENTS at once, only
GET/HEAD /metrics. Runs as the mail owner, chrooted into the queue directory when started as root,
PR_SET_NO_NEW_PRIVS, no capabilities; of the listening sockets it holds only its own. Reads
counter files the other mail-owner processes wrote, with bounds.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import signal
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import CollectorRegistry

from hardener.errors import ConfigError
from hardener.mta import maillog, metrics
from hardener.mta.config.settings import MtaSettings
from hardener.mta.master.privileges import (
    acting_as,
    drop_privileges,
    listening_socket,
    owner_ids,
    set_parent_death_signal,
)
from hardener.mta.master.supervisor import ChildService
from hardener.mta.queue.layout import valid_queue_id
from hardener.mta.safe_open import UnsafeFileError, open_dir, open_regular, replace_at

log = maillog.get_logger("metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
QUEUES = ("incoming", "active", "deferred", "hold", "maildrop")
ARCHIVE = "archive.json"
COMPACT_LOCK = "compact.lock"
ARCHIVE_LIMIT = 1 << 20        # bytes of archive.json read
MAX_FILES = 10000              # counter files read per scrape
MAX_SERIES = 4096              # series kept in the archive
MAX_QUEUE_SCAN = 1_000_000     # names counted per queue per scrape
MAX_REQUEST = 8192             # bytes of request head
REQUEST_TIMEOUT = 10.0         # seconds for the request head, and again for the reply
MAX_CLIENTS = 4                # scrapes served at once; more are closed at once
_ID_TIME_MASK = (1 << 48) - 1  # a queue id holds the low 48 bits of microseconds since the epoch
_FUTURE_SLACK_US = 86_400 * 1_000_000


# ---- the metrics directory ---------------------------------------------------------------

def prepare_directory(queue_directory: str | os.PathLike[str], mail_owner: str) -> int:
    """Create `queue_directory/metrics` (mode 0700, the mail owner's) and return an O_PATH
    directory fd for it (enough for openat as the mail owner; root needs no right to read it, so
    the master runs without CAP_DAC_OVERRIDE). As root: made by root in the root-owned queue root,
    then given to the mail owner (a mode to fix is fixed with the owner's rights). ConfigError
    when the directory cannot be made safe (a symlink, not a directory, another user's)."""
    as_root = os.geteuid() == 0
    uid, gid = owner_ids(mail_owner) if as_root else (os.geteuid(), os.getegid())
    name = metrics.METRICS_DIR
    shown = f"{queue_directory}/{name}"
    try:
        root_fd = open_dir(queue_directory)
        try:
            try:
                os.mkdir(name, 0o700, dir_fd=root_fd)
            except FileExistsError:
                pass
            st = os.stat(name, dir_fd=root_fd, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):
                raise ConfigError(f"{shown} is not a directory (or is a symlink)",
                                  field="queue_directory")
            if (st.st_uid, st.st_gid) != (uid, gid):
                if not as_root:
                    raise ConfigError(f"{shown} is owned by uid {st.st_uid}, not by this user",
                                      field="queue_directory")
                # only root can rename in the root-owned queue root: the name cannot be swapped
                os.chown(name, uid, gid, dir_fd=root_fd, follow_symlinks=False)
            if stat.S_IMODE(st.st_mode) != 0o700:
                with acting_as(uid, gid):
                    fd = open_dir(name, dir_fd=root_fd)
                    try:
                        os.fchmod(fd, 0o700)
                    finally:
                        os.close(fd)
            return os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                           dir_fd=root_fd)
        finally:
            os.close(root_fd)
    except UnsafeFileError as exc:
        raise ConfigError(f"{exc.filename}: {exc.strerror}", field="queue_directory") from None
    except OSError as exc:
        raise ConfigError(f"cannot set up {shown}: {exc.strerror}",
                          field="queue_directory") from None


def open_readable(path_fd: int) -> int:
    """A readable fd for the directory at O_PATH `path_fd` (in the endpoint, as the mail owner)."""
    return os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=path_fd)


# ---- counters: read, merge, archive ------------------------------------------------------------

def _load_archive(dir_fd: int) -> tuple[dict[str, int], list[str]]:
    """(values, names of merged files) from archive.json; empty when missing or unreadable."""
    try:
        fd = open_regular(ARCHIVE, dir_fd=dir_fd)
    except FileNotFoundError:
        return {}, []
    try:
        data = json.loads(os.read(fd, ARCHIVE_LIMIT))
        values = {k: int(v) for k, v in data["values"].items()
                  if metrics.parse_key(k) is not None and int(v) >= 0}
        merged = [n for n in data["merged"] if isinstance(n, str)
                  and n.startswith(metrics.LIVE_PREFIX)]
        return values, merged
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning(f"{metrics.METRICS_DIR}/{ARCHIVE} is unreadable, counting from 0: {exc}")
        return {}, []
    finally:
        os.close(fd)


def _write_archive(dir_fd: int, values: dict[str, int], merged: list[str]) -> None:
    """archive.json replaced atomically (safe_open.replace_at; compact.lock serialises writers)."""
    data = json.dumps({"values": values, "merged": merged}, sort_keys=True).encode()
    replace_at(dir_fd, ARCHIVE, data, 0o600)


def _add(total: dict[str, int], values: dict[str, int]) -> None:
    for key, value in values.items():
        if key in total or len(total) < MAX_SERIES:
            total[key] = total.get(key, 0) + value


def _unlink(name: str, dir_fd: int) -> bool:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning(f"cannot remove {metrics.METRICS_DIR}/{name}: {exc.strerror}")
        return False
    return True


def gather_counters(dir_fd: int, now: float | None = None) -> dict[str, int]:
    """Every series' total: the archive plus every counter file; files of processes that have
    gone are merged into the archive and removed. The caller serialises calls (compact.lock)."""
    now = time.time() if now is None else now
    archive, merged = _load_archive(dir_fd)
    totals = dict(archive)
    dead: dict[str, int] = {}
    dead_names: list[str] = []
    with os.scandir(dir_fd) as entries:
        names = sorted(e.name for e in entries)
    # merged before a crash could unlink them: remove now, never count again
    kept = [n for n in merged if n in names and not _unlink(n, dir_fd)]
    done = set(merged)
    seen = 0
    for name in names:
        if name.startswith(metrics.TEMP_PREFIX):
            _remove_stale_temp(name, dir_fd, now)
            continue
        if not name.startswith(metrics.LIVE_PREFIX) or name in done:
            continue
        seen += 1
        if seen > MAX_FILES:
            log.warning(f"more than {MAX_FILES} counter files; the rest are not counted")
            break
        try:
            fd = open_regular(name, dir_fd=dir_fd)
        except (FileNotFoundError, UnsafeFileError):
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                alive = False
            except BlockingIOError:
                alive = True
            try:
                values = metrics.read_counter_file(fd)
            except metrics.MetricsFileError as exc:
                log.warning(f"{metrics.METRICS_DIR}/{name}: not a counter file ({exc})"
                            + ("" if alive else "; removed"))
                if not alive:
                    _unlink(name, dir_fd)
                continue
        finally:
            os.close(fd)
        _add(totals, values)
        if not alive:
            _add(dead, values)
            dead_names.append(name)
    if dead_names or kept != merged:
        _add(archive, dead)
        _write_archive(dir_fd, archive, kept + dead_names)
        for name in dead_names:
            _unlink(name, dir_fd)
    return totals


def _remove_stale_temp(name: str, dir_fd: int, now: float) -> None:
    """A counter file its process never renamed (it died in between): removed after a minute,
    when its lock is free (a process still creating it holds the lock)."""
    try:
        fd = open_regular(name, dir_fd=dir_fd)
    except (FileNotFoundError, UnsafeFileError):
        return
    try:
        if now - os.fstat(fd).st_mtime < 60:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return
        _unlink(name, dir_fd)
    finally:
        os.close(fd)


# ---- queues --------------------------------------------------------------------------------

def id_age(name: str, now: float) -> float:
    """Seconds since the time written in a queue id or maildrop name (0 for a time ahead of
    `now` by less than a day: a clock set back)."""
    stamp = int(name[:12], 16)
    now_us = int(now * 1_000_000) & _ID_TIME_MASK
    if (stamp - now_us) & _ID_TIME_MASK < _FUTURE_SLACK_US:
        return 0.0
    return ((now_us - stamp) & _ID_TIME_MASK) / 1_000_000


_unreadable: set[str] = set()


def queue_sizes(queue_fd: int, now: float) -> dict[str, tuple[int, float]]:
    """queue -> (messages, age of the oldest in seconds, 0 when empty), from the names only."""
    result: dict[str, tuple[int, float]] = {}
    for queue in QUEUES:
        count, oldest = 0, 0.0
        try:
            fd = open_dir(queue, dir_fd=queue_fd)
        except OSError as exc:
            if queue not in _unreadable:   # once: a scrape every few seconds must not flood
                _unreadable.add(queue)
                log.warning(f"cannot list {queue}/: {exc.strerror}; not reported")
            continue
        try:
            with os.scandir(fd) as entries:
                for entry in entries:
                    if not valid_queue_id(entry.name):
                        continue
                    count += 1
                    oldest = max(oldest, id_age(entry.name, now))
                    if count >= MAX_QUEUE_SCAN:
                        log.warning(f"{queue}: more than {MAX_QUEUE_SCAN} messages; counted "
                                    f"{MAX_QUEUE_SCAN}")
                        break
        finally:
            os.close(fd)
        result[queue] = (count, oldest)
    return result


class MetricsCollector:
    """prometheus_client collector: the counter totals and the queue sizes, computed per scrape."""

    def __init__(self, dir_fd: int, queue_fd: int, clock: Callable[[], float] = time.time):
        self.dir_fd, self.queue_fd, self.clock = dir_fd, queue_fd, clock
        self._lock = threading.Lock()

    def _counters(self) -> dict[str, int]:
        lock_fd = os.open(COMPACT_LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                          0o600, dir_fd=self.dir_fd)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            return gather_counters(self.dir_fd)
        finally:
            os.close(lock_fd)

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        """The metric families (the registry calls this on every scrape)."""
        with self._lock:
            totals = self._counters()
            queues = queue_sizes(self.queue_fd, self.clock())
        families: dict[str, CounterMetricFamily] = {}
        for name, (help_text, labels) in metrics.SCHEMA.items():
            # prometheus_client adds _total itself to a counter's samples
            families[name] = CounterMetricFamily(name.removesuffix("_total"), help_text,
                                                 labels=list(labels))
        for key, value in sorted(totals.items()):
            parsed = metrics.parse_key(key)
            if parsed is not None:
                families[parsed[0]].add_metric(list(parsed[1]), value)
        yield from families.values()
        size = GaugeMetricFamily("hardener_queue_messages", "Messages in each queue "
                                 "(names counted, as qshape's totals)", labels=["queue"])
        age = GaugeMetricFamily("hardener_queue_oldest_message_age_seconds",
                                "Age of the oldest message in each queue (0 when empty), from "
                                "its queue id's time", labels=["queue"])
        for queue, (count, oldest) in queues.items():
            size.add_metric([queue], count)
            age.add_metric([queue], round(oldest, 3))
        yield size
        yield age


# ---- HTTP ----------------------------------------------------------------------------------

def _response(status: str, body: bytes, content_type: str = "text/plain; charset=utf-8",
              extra: str = "", head: bool = False) -> bytes:
    header = (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
              f"Content-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n").encode()
    return header if head else header + body


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                  registry: CollectorRegistry, slots: list[int]) -> None:
    if slots[0] >= MAX_CLIENTS:
        writer.close()
        return
    slots[0] += 1
    try:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError,
                ConnectionError):
            return
        parts = head.split(b"\r\n", 1)[0].split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            reply = _response("400 Bad Request", b"bad request\n")
        elif parts[1].split(b"?", 1)[0] != b"/metrics":
            reply = _response("404 Not Found", b"only /metrics is served\n")
        elif parts[0] not in (b"GET", b"HEAD"):
            reply = _response("405 Method Not Allowed", b"GET or HEAD\n", extra="Allow: GET, HEAD\r\n")
        else:
            loop = asyncio.get_running_loop()
            try:
                body = await loop.run_in_executor(None, generate_latest, registry)
            except Exception as exc:  # noqa: BLE001 - one failed scrape, never the endpoint
                log.warning(f"scrape failed: {exc!r}")
                reply = _response("500 Internal Server Error", b"scrape failed\n")
            else:
                reply = _response("200 OK", body, CONTENT_TYPE, head=parts[0] == b"HEAD")
        writer.write(reply)
        try:
            await asyncio.wait_for(writer.drain(), REQUEST_TIMEOUT)
        except (asyncio.TimeoutError, ConnectionError):
            pass
    finally:
        slots[0] -= 1
        writer.close()


async def serve(sock: socket.socket, registry: CollectorRegistry,
                stop: asyncio.Event | None = None) -> None:
    """Serve /metrics on the bound, listening `sock` until `stop` is set (by SIGTERM when no
    event is given)."""
    if stop is None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    slots = [0]
    server = await asyncio.start_server(lambda r, w: _handle(r, w, registry, slots), sock=sock,
                                        limit=MAX_REQUEST)
    async with server:
        await stop.wait()


# ---- the child process ------------------------------------------------------------------------

def bind(config: metrics.MetricsConfig) -> socket.socket:
    """The endpoint's listening socket; ConfigError naming hardener_metrics_listen on failure."""
    try:
        return listening_socket(config.address, config.port, backlog=16)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {config.shown}: {exc.strerror}",
                          field=metrics.PARAMETER) from None


class Endpoint:
    """What the master prepares for the endpoint child, as root, before its other children start:
    the metrics directory (counting is on in every process forked after this) and the queue root.

    The child binds its own socket, as root, before it drops privileges: the master does not keep
    it, so no other child (smtpd, qmgr, pickup, all forked and restarted by the master) ever holds
    it. The master binds it once here and closes it, so a bad address or a port in use is one
    ConfigError line at start.
    """

    def __init__(self, config: metrics.MetricsConfig, settings: MtaSettings) -> None:
        self.config, self.settings = config, settings
        bind(config).close()
        self.dir_fd = prepare_directory(settings.queue_directory, settings.mail_owner)
        self.queue_fd = open_dir(settings.queue_directory)
        metrics.enable(self.dir_fd)
        if not config.loopback:
            log.warning(f"{metrics.PARAMETER}: {config.shown} is not a loopback address: "
                        "whoever reaches it reads the queue sizes and counters")

    def child_main(self, close: Iterable[int] = ()) -> int:
        """The endpoint child, after the fork: close `close` (the master's SMTP listeners), bind,
        drop to the mail owner chrooted into the queue directory (when root), serve until
        SIGTERM. Returns the exit code."""
        for fd in close:
            os.close(fd)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        sock = bind(self.config)
        set_parent_death_signal()   # SIGTERM when the master dies; the drop arms it again
        # setgroups, setgid, setuid, checked, then PR_SET_NO_NEW_PRIVS (privileges.py)
        drop_privileges(self.settings.mail_owner, chroot=str(self.settings.queue_directory))
        registry = CollectorRegistry(auto_describe=False)
        registry.register(MetricsCollector(open_readable(self.dir_fd), self.queue_fd))
        log.info(f"metrics endpoint on {self.config.shown}")
        asyncio.run(serve(sock, registry))
        return 0


def children(settings: MtaSettings, close: Iterable[int]) -> list[ChildService]:
    """The master's endpoint child (none when hardener_metrics_listen is empty), for it to start,
    watch and stop with the others; `close` are the fds the child must not keep (SMTP
    listeners). Call before forking the children that count."""
    config = metrics.load_config(settings.main)
    if config is None:
        return []
    endpoint = Endpoint(config, settings)
    fds = list(close)
    return [ChildService("metrics endpoint", lambda: endpoint.child_main(fds))]
