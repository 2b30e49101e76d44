"""Metrics: the hardener_metrics_listen parameter, counter files written by real processes (as the
mail owner), their merge into the archive, queue sizes from queue ids, and the HTTP endpoint.

The daemon end to end (real SMTP sessions, smtp-sink, a scrape over loopback) is in
tests/mta/test_metrics_daemon.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hardener.errors import ConfigError
from hardener.mta import metrics
from hardener.mta.master import metrics_endpoint as me
from hardener.postfix.maincf import load_main_cf
from tests.fixtures import procs
from tests.fixtures.relay import wait_until

CONN = "hardener_smtpd_connections_total|service=smtp"
RELAY = "hardener_smtpd_rejects_total|reason=relay_denied"


# ---- hardener_metrics_listen ---------------------------------------------------------------

@pytest.mark.parametrize("value, address, port, loopback", [
    ("9154", "127.0.0.1", 9154, True),
    ("127.0.0.1:9154", "127.0.0.1", 9154, True),
    ("127.3.4.5:9154", "127.3.4.5", 9154, True),
    ("[::1]:9154", "::1", 9154, True),
    ("0.0.0.0:9154", "0.0.0.0", 9154, False),       # explicit: every address
    ("192.0.2.7:9154", "192.0.2.7", 9154, False),
])
def test_listen_values(value: str, address: str, port: int, loopback: bool) -> None:
    config = metrics.parse_listen(value)
    assert (config.address, config.port, config.loopback) == (address, port, loopback)


def test_empty_listen_is_off() -> None:
    assert metrics.parse_listen("") is None
    assert metrics.parse_listen("  ") is None


@pytest.mark.parametrize("value, words", [
    ("localhost:9154", "not an IP address"),
    ("127.0.0.1:0", "port must be"),
    ("127.0.0.1:65536", "port must be"),
    ("127.0.0.1:x", "port must be"),
    ("::1:9154", "expected PORT"),
    ("[127.0.0.1]:9154", "brackets are for IPv6"),
    ("[::1]9154", "expected [ADDRESS]:PORT"),
    ("224.0.0.1:9154", "multicast"),
])
def test_bad_listen_is_one_line_naming_file_line_field(tmp_path: Path, value: str,
                                                       words: str) -> None:
    (tmp_path / "main.cf").write_text(f"myhostname = mx.example.com\n"
                                      f"hardener_metrics_listen = {value}\n")
    with pytest.raises(ConfigError) as err:
        metrics.load_config(load_main_cf(tmp_path / "main.cf"))
    line = err.value.one_line()
    assert line.startswith(f"{tmp_path / 'main.cf'}:2: hardener_metrics_listen: ")
    assert words in line and "\n" not in line


def test_unset_listen_is_off(tmp_path: Path) -> None:
    (tmp_path / "main.cf").write_text("myhostname = mx.example.com\n")
    assert metrics.load_config(load_main_cf(tmp_path / "main.cf")) is None


# ---- reject classes --------------------------------------------------------------------------

@pytest.mark.parametrize("reply, reason", [
    # the replies smtpd sends (hardener/mta/smtpd/*.py), which are Postfix's
    ("554 5.7.1 <u@remote.example>: Relay access denied", "relay_denied"),
    ("550 5.1.1 <nobody@mx.example>: Recipient address rejected: User unknown in local "
     "recipient table", "unknown_user"),
    ("554 5.7.1 <u@x.example>: Recipient address rejected: Access denied", "recipient_rejected"),
    ("504 5.5.2 <u>: Sender address rejected: need fully-qualified address", "sender_rejected"),
    ("554 5.7.1 <unknown[192.0.2.1]>: Client host rejected: Access denied", "client_rejected"),
    ("501 5.5.2 <a b>: Helo command rejected: Invalid name", "helo_rejected"),
    ("503 5.5.0 <DATA>: Data command rejected: Improper use of SMTP command pipelining",
     "unauth_pipelining"),
    ("552 5.3.4 Message size exceeds fixed limit", "message_too_big"),
    ("552 5.3.4 Error: message file too big", "message_too_big"),
    ("452 4.3.1 Insufficient system storage", "insufficient_storage"),
    ("550 5.5.2 Error: bare <LF> received", "bare_newline"),
    ("451 4.3.0 Error: queue file write error", "queue_write_error"),
    ("550 5.7.0 something new", "other"),
])
def test_reject_reason(reply: str, reason: str) -> None:
    assert metrics.reject_reason(reply) == reason
    assert reason in metrics.REASONS


def test_label_values_are_bounded_and_safe() -> None:
    key = metrics.series_key("hardener_smtpd_connections_total", {"service": "a|b=c\n" + "x" * 99})
    assert metrics.parse_key(key) == ("hardener_smtpd_connections_total", ("a_b_c_" + "x" * 58,))
    with pytest.raises(ValueError):
        metrics.series_key("hardener_smtpd_connections_total", {"reason": "x"})
    assert metrics.parse_key("hardener_smtpd_connections_total|service=a|b=c") is None
    assert metrics.parse_key("not_a_metric|service=smtp") is None


# ---- counter files written by real processes ---------------------------------------------------

@pytest.fixture
def metrics_dir(tmp_path: Path, mail_owner: str) -> Iterator[int]:
    """queue/metrics prepared as the master prepares it (root, owned by the mail owner); counting
    enabled in this process (children inherit it) and disabled again afterwards."""
    queue = tmp_path / "queue"
    queue.mkdir(mode=0o755)
    path_fd = me.prepare_directory(queue, mail_owner)
    metrics.enable(path_fd)
    readable = me.open_readable(path_fd)
    yield readable
    metrics.disable()
    os.close(readable)
    os.close(path_fd)


class Child:
    """A forked process that becomes the mail owner, runs `counts`, then waits for `finish()`
    (a live writer) or exits at once (`wait=False`)."""

    def __init__(self, user: str, counts: Callable[[], None], wait: bool = True) -> None:
        pw = pwd.getpwnam(user)
        ready_r, ready_w = os.pipe()
        self.go_r, self.go_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            code = 1
            try:
                os.setgroups([pw.pw_gid])
                os.setgid(pw.pw_gid)
                os.setuid(pw.pw_uid)
                counts()
                os.write(ready_w, b"x")
                if wait:
                    os.read(self.go_r, 1)
                code = 0
            finally:
                os._exit(code)
        os.close(ready_w)
        assert os.read(ready_r, 1) == b"x"
        os.close(ready_r)

    def finish(self) -> int:
        os.write(self.go_w, b"x")
        return os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])


def names(dir_fd: int) -> list[str]:
    return sorted(os.listdir(dir_fd))


def test_a_live_writer_is_counted_and_kept_then_merged_once(metrics_dir: int,
                                                            mail_owner: str) -> None:
    def counts() -> None:
        for _ in range(3):
            metrics.count_connection("smtp")
        metrics.count_reject("554 5.7.1 <u@remote.example>: Relay access denied")

    child = Child(mail_owner, counts)
    live = [n for n in names(metrics_dir) if n.startswith(metrics.LIVE_PREFIX)]
    assert len(live) == 1
    owner = os.stat(live[0], dir_fd=metrics_dir)
    assert (owner.st_uid, oct(owner.st_mode & 0o777)) == (pwd.getpwnam(mail_owner).pw_uid, "0o600")
    assert me.gather_counters(metrics_dir) == {CONN: 3, RELAY: 1}
    assert live[0] in names(metrics_dir)            # its process runs: not merged
    assert child.finish() == 0
    assert me.gather_counters(metrics_dir) == {CONN: 3, RELAY: 1}
    assert live[0] not in names(metrics_dir)        # merged into the archive, removed
    assert me.gather_counters(metrics_dir) == {CONN: 3, RELAY: 1}   # and never again


def test_processes_add_up_and_a_forked_child_writes_its_own_file(metrics_dir: int,
                                                                 mail_owner: str) -> None:
    def counts() -> None:
        metrics.count_connection("smtp")
        pid = os.fork()
        if pid == 0:   # a child of a counting process never writes its parent's file
            metrics.count_connection("smtp")
            metrics.count_connection("submission")
            os._exit(0)
        os.waitpid(pid, 0)

    Child(mail_owner, counts, wait=False).finish()
    Child(mail_owner, lambda: metrics.count_accepted("smtp"), wait=False).finish()
    assert me.gather_counters(metrics_dir) == {
        CONN: 2, "hardener_smtpd_connections_total|service=submission": 1,
        "hardener_smtpd_messages_accepted_total|service=smtp": 1}
    assert names(metrics_dir) == [me.ARCHIVE]   # three processes gone, three files merged


def test_root_does_not_count(metrics_dir: int) -> None:
    assert os.geteuid() == 0
    metrics.count_connection("smtp")
    assert names(metrics_dir) == []


def test_crash_between_archive_and_unlink_never_counts_twice(metrics_dir: int,
                                                             mail_owner: str) -> None:
    Child(mail_owner, lambda: metrics.count_connection("smtp"), wait=False).finish()
    [dead] = names(metrics_dir)
    # The crash itself cannot be made to happen at that instant: its state is written instead,
    # an archive that already holds the file's values and names it, and the file still there.
    (Path(f"/proc/self/fd/{metrics_dir}") / me.ARCHIVE).write_text(
        json.dumps({"values": {CONN: 1}, "merged": [dead]}))
    assert me.gather_counters(metrics_dir) == {CONN: 1}
    assert dead not in names(metrics_dir)
    assert me.gather_counters(metrics_dir) == {CONN: 1}


def test_malformed_files_are_not_counted(metrics_dir: int, mail_owner: str) -> None:
    Child(mail_owner, lambda: metrics.count_connection("smtp"), wait=False).finish()
    [good] = names(metrics_dir)
    bad = Path(f"/proc/self/fd/{metrics_dir}") / "w.bad"
    bad.write_bytes(b"not a counter file")
    forged = Path(f"/proc/self/fd/{metrics_dir}") / "w.forged"
    data = bytearray(Path(f"/proc/self/fd/{metrics_dir}", good).read_bytes())
    at = data.index(b"service=smtp")
    data[at:at + 7] = b"servicX"       # a label the schema does not have
    forged.write_bytes(bytes(data))
    assert me.gather_counters(metrics_dir) == {CONN: 1}
    assert set(names(metrics_dir)) == {me.ARCHIVE}


def test_a_full_file_drops_new_series_only() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        try:
            f = metrics.CounterFile(fd)
            n = 0
            while not f.dropped:
                f.add(metrics.series_key("hardener_smtpd_connections_total",
                                         {"service": f"s{n}"}))
                n += 1
            f.add(metrics.series_key("hardener_smtpd_connections_total", {"service": "s0"}))
            values = metrics.read_counter_file(os.open(f.name, os.O_RDONLY, dir_fd=fd))
            assert len(values) == n - 1 and values[
                "hardener_smtpd_connections_total|service=s0"] == 2
            f.close()
        finally:
            os.close(fd)


# ---- queues ----------------------------------------------------------------------------------------

NOW = 1_700_000_000.0   # a fixed clock: the ages below do not depend on today's date


def qid(seconds_ago: float, now: float = NOW) -> str:
    micros = int((now - seconds_ago) * 1_000_000) & ((1 << 48) - 1)
    return f"{micros:012X}00A1B"


def test_queue_sizes_and_oldest_age_from_names(tmp_path: Path) -> None:
    for queue, ages in {"incoming": [5, 1], "active": [], "deferred": [3600, 60, 7200],
                        "hold": [86400 * 3], "maildrop": [2]}.items():
        (tmp_path / queue).mkdir()
        for age in ages:
            (tmp_path / queue / qid(age)).write_bytes(b"")
    (tmp_path / "incoming" / "not-a-queue-file").write_bytes(b"")
    (tmp_path / "maildrop" / f"t{qid(99999)}").write_bytes(b"")   # sendmail's temporary name
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        sizes = me.queue_sizes(fd, NOW)
    finally:
        os.close(fd)
    assert sizes == {"incoming": (2, 5.0), "active": (0, 0.0), "deferred": (3, 7200.0),
                     "hold": (1, 259200.0), "maildrop": (1, 2.0)}


def test_id_age_across_the_48_bit_wrap_and_a_clock_set_back() -> None:
    wrap = float((1 << 48) // 1_000_000 * 3)      # a now just after the low 48 bits wrapped
    assert me.id_age(qid(10, wrap + 5), wrap + 5) == pytest.approx(10)
    assert me.id_age(qid(-30), NOW) == 0.0        # 30 s in the future: the clock went back


# ---- the HTTP endpoint --------------------------------------------------------------------

@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """serve() on 127.0.0.1 in a thread, over a collector of an empty metrics dir and queue."""
    for name in ("metrics", *me.QUEUES):
        (tmp_path / name).mkdir()
    dir_fd = os.open(tmp_path / "metrics", os.O_RDONLY | os.O_DIRECTORY)
    queue_fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    from prometheus_client.registry import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    registry.register(me.MetricsCollector(dir_fd, queue_fd, clock=lambda: NOW))
    sock = me.bind(metrics.MetricsConfig("127.0.0.1", 0))
    port = sock.getsockname()[1]
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(target=loop.run_until_complete,
                              args=(me.serve(sock, registry, stop),), daemon=True)
    thread.start()
    yield "127.0.0.1", port
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)
    sock.close()
    os.close(dir_fd)
    os.close(queue_fd)


def raw(address: tuple[str, int], data: bytes) -> bytes:
    """Send `data`, read until the server closes; b"" when it closed without answering."""
    with socket.create_connection(address, timeout=15) as s:
        out = b""
        try:
            s.sendall(data)
            while chunk := s.recv(65536):
                out += chunk
        except ConnectionResetError:
            pass
    return out


def test_http_serves_metrics_only(endpoint: tuple[str, int]) -> None:
    host, port = endpoint
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=15) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == me.CONTENT_TYPE
        body = resp.read().decode()
    assert 'hardener_queue_messages{queue="deferred"} 0.0' in body
    assert "# TYPE hardener_smtpd_connections_total counter" in body
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"http://{host}:{port}/", timeout=15)
    assert err.value.code == 404
    req = urllib.request.Request(f"http://{host}:{port}/metrics", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=15)
    assert err.value.code == 405
    assert raw(endpoint, b"garbage\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    head = raw(endpoint, b"HEAD /metrics HTTP/1.0\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and head.endswith(b"\r\n\r\n")


def test_http_request_head_is_bounded(endpoint: tuple[str, int]) -> None:
    # a complete request whose head is longer than MAX_REQUEST: closed unanswered
    big = b"GET /metrics HTTP/1.1\r\nX: " + b"a" * (me.MAX_REQUEST * 2) + b"\r\n\r\n"
    assert raw(endpoint, big) == b""
    small = b"GET /metrics HTTP/1.1\r\nX: " + b"a" * (me.MAX_REQUEST // 2) + b"\r\n\r\n"
    assert raw(endpoint, small).startswith(b"HTTP/1.1 200 ")


# ---- the daemon, end to end --------------------------------------------------------------

def _scrape(address: str, port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """GET /metrics over loopback: (sample name, sorted labels) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://{address}:{port}/metrics", timeout=15) as resp:
        text = resp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _send(client, sender: str, rcpts: list[str]) -> int:
    assert client.cmd(f"MAIL FROM:<{sender}>")[0] == 250
    for rcpt in rcpts:
        assert client.cmd(f"RCPT TO:<{rcpt}>")[0] == 250
    assert client.cmd("DATA")[0] == 354
    return client.cmd(b"Subject: metrics\r\n\r\nhello\r\n.")[0]


def test_scrape_after_real_sessions_matches_the_log(mta_factory, smtp_sink_factory, loopback):
    from tests.fixtures.mta import SmtpClient
    from tests.fixtures.net import free_port

    sink = smtp_sink_factory()
    down = loopback.host()
    mta = mta_factory(start=False)
    metrics_port = free_port(mta.address)
    table = mta.config_dir / "transport"
    table.write_text(f"sink.example smtp:[{sink.address}]:{sink.port}\n"
                     f"down.example smtp:[{down}]:{free_port(down)}\n")
    mta.write_config({"relay_domains": "sink.example down.example",
                      "transport_maps": f"texthash:{table}", "smtp_tls_security_level": "none",
                      "hardener_metrics_listen": f"{mta.address}:{metrics_port}"}, None, None)
    mta.start()
    outsider = loopback.address()
    with SmtpClient(mta.address, mta.port, source=outsider) as c:      # relay refused
        c.greeting()
        c.cmd("EHLO client.example")
        c.cmd("MAIL FROM:<a@client.example>")
        assert c.cmd("RCPT TO:<u@foreign.example>")[0] == 554
        c.cmd("QUIT")
    with SmtpClient(mta.address, mta.port, source=outsider) as c:      # to smtp-sink
        c.greeting()
        c.cmd("EHLO client.example")
        assert _send(c, "a@client.example", ["r1@sink.example", "r2@sink.example"]) == 250
        c.cmd("QUIT")
    with SmtpClient(mta.address, mta.port, source="127.0.0.1") as c:   # next hop down
        c.greeting()
        c.cmd("EHLO client.example")
        assert _send(c, "a@client.example", ["x@down.example"]) == 250
        c.cmd("QUIT")
    assert sink.wait_for_messages(1, timeout=30) == 1
    mta.wait_for_log("status=deferred")
    assert wait_until(lambda: len(list((mta.queue_dir / "deferred").iterdir())) == 1, 30)
    log = mta.log_text()

    got = _scrape(mta.address, metrics_port)
    service = f"{mta.address}:{mta.port}"
    assert got[("hardener_smtpd_connections_total", (("service", service),))] \
        == log.count(": connect from ") == 4      # the fixture's start probe, then 3 sessions
    assert got[("hardener_smtpd_rejects_total", (("reason", "relay_denied"),))] \
        == log.count("Relay access denied") == 1
    assert got[("hardener_smtpd_messages_accepted_total", (("service", service),))] == 2
    assert got[("hardener_delivery_recipients_total", (("status", "sent"), ("transport", "smtp")))] \
        == log.count("status=sent") == 2
    assert got[("hardener_delivery_recipients_total",
                (("status", "deferred"), ("transport", "smtp")))] \
        == log.count("status=deferred") == 1
    assert got[("hardener_queue_messages", (("queue", "deferred"),))] == 1
    for queue in ("incoming", "active", "hold", "maildrop"):
        assert got[("hardener_queue_messages", (("queue", queue),))] == 0
    assert 0 < got[("hardener_queue_oldest_message_age_seconds", (("queue", "deferred"),))] < 600

    # the endpoint child: the mail owner, no capabilities, NoNewPrivs, the queue as its root;
    # it holds no SMTP listener, and no other process holds its socket
    [child] = [p for p in mta.pids() if metrics_port in procs.listening_ports(p)]
    assert procs.root(child) == str(mta.queue_dir.resolve())
    status = procs.status(child)
    uid = pwd.getpwnam("hardener").pw_uid
    assert status["Uid"].split() == [str(uid)] * 4
    assert int(status["CapEff"], 16) == 0 and int(status["CapPrm"], 16) == 0
    assert status["NoNewPrivs"].strip() == "1"
    assert procs.listening_ports(child) == {metrics_port}

    # counts survive a restart: the old processes' files are merged, the new ones add to them
    mta.stop()
    mta.start()
    again = _scrape(mta.address, metrics_port)
    assert again[("hardener_smtpd_connections_total", (("service", service),))] == 5
    assert again[("hardener_smtpd_rejects_total", (("reason", "relay_denied"),))] == 1


@pytest.mark.parametrize("value, message", [
    ("localhost:9154", "hardener_metrics_listen: 'localhost' is not an IP address"),
    ("127.0.0.1:99999", "hardener_metrics_listen: port must be a number from 1 to 65535, "
                        "not '99999'"),
])
def test_bad_metrics_listen_refuses_to_start_in_one_line(mta_factory, value: str,
                                                         message: str) -> None:
    import subprocess
    import sys

    mta = mta_factory({"hardener_metrics_listen": value}, start=False)
    proc = subprocess.run([sys.executable, "-m", "hardener", "mta", "serve", "--config",
                           str(mta.config_dir)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    main_cf = mta.config_dir / "main.cf"
    line_no = main_cf.read_text().splitlines().index(f"hardener_metrics_listen = {value}") + 1
    assert proc.stderr.strip().splitlines() == [
        f"hardener: error: {main_cf}:{line_no}: {message}"]
    assert not (mta.queue_dir / "metrics").exists()
