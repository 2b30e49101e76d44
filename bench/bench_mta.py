"""MTA throughput: the hardener MTA against a real Postfix, both relaying to one smtp-sink.

    make bench        (or: .venv/bin/python -m pytest -q -s -m bench -o addopts='' bench/bench_mta.py)

One run on this machine, for each MTA in turn: Postfix's `smtp-source -s 20 -m 5000 -l 4096` sends
into the MTA (configured from the same `hardener render null-client` main.cf, relayhost = the sink),
while a small Python client sends SAMPLE more messages one by one and times each end-of-data -> 250.
Measured: messages/second accepted (smtp-source's run time: every message fsynced before its 250),
messages/second end to end (until the sink has every message), p50/p99 time to 250, and the peak RSS
of the MTA's whole process tree (RSS and PSS summed over its processes, sampled from /proc every
50 ms). Results are printed and written
to /var/tmp/hardener-tests/bench_mta.json; docs/benchmarks.md "## MTA throughput" reports them.
HARDENER_BENCH_MESSAGES overrides the message count (for a quick try).
"""

from __future__ import annotations

import json
import os
import shutil
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.mta import mail_owner, mta_factory  # noqa: E402,F401
from tests.fixtures.net import loopback  # noqa: E402,F401
from tests.fixtures.postfix import postfix_factory, smtp_sink_factory  # noqa: E402,F401
from tests.fixtures.tls import cert_factory  # noqa: E402,F401

MESSAGES = int(os.environ.get("HARDENER_BENCH_MESSAGES", "5000"))
SESSIONS = 20
SIZE = 4096
SAMPLE = 200
RESULTS = Path("/var/tmp/hardener-tests/bench_mta.json")
# main.cf parameters the mta fixture must keep (its own paths, listen address, mail owner)
_FIXTURE_OWNED = {"inet_interfaces", "alias_maps", "alias_database", "queue_directory",
                  "mail_owner", "maillog_file", "data_directory"}


def _tree(root: int) -> list[int]:
    """`root` and all its descendants, from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += parents.get(pid, [])
    return out


def _memory_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in kB. PSS shares pages among the processes that map them, so the
    sum over Postfix's many processes is not inflated by shared libraries counted 20 times."""
    rss = pss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


class RssSampler(threading.Thread):
    """Peaks of the summed RSS and PSS of a process tree, sampled every 50 ms."""

    def __init__(self, root_pid: int) -> None:
        super().__init__(daemon=True)
        self.root = root_pid
        self.peak_kb = 0
        self.peak_pss_kb = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            sizes = [_memory_kb(p) for p in _tree(self.root)]
            self.peak_kb = max(self.peak_kb, sum(r for r, _ in sizes))
            self.peak_pss_kb = max(self.peak_pss_kb, sum(p for _, p in sizes))
            self._halt.wait(0.05)

    def stop(self) -> int:
        self._halt.set()
        self.join(5)
        return self.peak_kb


def _latency_sample(address: str, port: int, count: int, out: list[float]) -> None:
    """Send `count` messages over one session; time DATA's end-of-data until the 250."""
    body = ("Subject: latency sample\r\n\r\n" + ("x" * 78 + "\r\n") * (SIZE // 80)).encode()
    with smtplib.SMTP(address, port, timeout=120) as s:
        s.ehlo("sample.client.test")
        for n in range(count):
            s.mail("sample@sender.example")
            s.rcpt(f"sample{n}@remote.example")
            code, _ = s.putcmd("DATA") or s.getreply()
            if code != 354:
                raise AssertionError(f"DATA -> {code}")
            s.send(body + b".\r\n")
            t0 = time.perf_counter()
            code, _ = s.getreply()
            out.append(time.perf_counter() - t0)
            assert code == 250


def _run(label: str, address: str, port: int, sink, root_pid: int) -> dict:
    base = sink.message_count()
    sampler = RssSampler(root_pid)
    sampler.start()
    latencies: list[float] = []
    sample = threading.Thread(target=_latency_sample, args=(address, port, SAMPLE, latencies))
    t0 = time.monotonic()
    sample.start()
    done = subprocess.run(["smtp-source", "-s", str(SESSIONS), "-m", str(MESSAGES), "-l", str(SIZE),
                           "-f", "bench@sender.example", "-t", "rcpt@remote.example",
                           "-M", "bench.client.test", f"{address}:{port}"],
                          capture_output=True, timeout=900)
    t_accept = time.monotonic() - t0
    sample.join(900)
    assert done.returncode == 0, done.stderr
    total = MESSAGES + SAMPLE
    got = sink.wait_for_messages(base + total, timeout=900) - base
    t_e2e = time.monotonic() - t0
    peak = sampler.stop()
    assert got >= total, f"{label}: only {got} of {total} messages reached the sink"
    lat = sorted(latencies)
    return {
        "mta": label, "messages": MESSAGES, "sessions": SESSIONS, "size": SIZE,
        "accept_seconds": round(t_accept, 2), "accept_per_second": round(MESSAGES / t_accept, 1),
        "e2e_seconds": round(t_e2e, 2), "e2e_per_second": round(total / t_e2e, 1),
        "p50_ms_to_250": round(statistics.median(lat) * 1000, 2),
        "p99_ms_to_250": round(lat[int(len(lat) * 0.99) - 1] * 1000, 2),
        "peak_rss_mb": round(peak / 1024, 1),
        "peak_pss_mb": round(sampler.peak_pss_kb / 1024, 1),
        "processes_at_end": len(_tree(root_pid)),
    }


def _render(sink, cert) -> Path:
    out = Path(tempfile.mkdtemp(prefix="bench-render-", dir="/var/tmp"))
    subprocess.run([sys.executable, "-m", "hardener", "render", "null-client", "--out", str(out),
                    "--set", "myhostname=bench.hardener.test",
                    "--set", f"relayhost=[{sink.address}]:{sink.port}",
                    "--set", "smtp_tls_security_level=may",  # smtp-sink has no STARTTLS
                    "--set", f"smtpd_tls_cert_file={cert.cert_file}",
                    "--set", f"smtpd_tls_key_file={cert.key}"],
                   check=True, capture_output=True)
    return out


@pytest.mark.bench
def test_mta_throughput_against_postfix(mta_factory, postfix_factory, smtp_sink_factory,
                                        cert_factory):
    from hardener.postfix.maincf import load_main_cf

    sink = smtp_sink_factory(backlog=1024)
    rendered = _render(sink, cert_factory.self_signed("bench.hardener.test"))
    main = load_main_cf(rendered / "main.cf")
    overrides = {name: main.raw(name) or "" for name in main.names() if name not in _FIXTURE_OWNED}
    overrides["inet_protocols"] = "ipv4"

    mta = mta_factory(overrides)
    hardener = _run("hardener", mta.address, mta.port, sink, mta.pids()[0])
    mta.stop()

    postfix = postfix_factory({"inet_protocols": "ipv4"},
                              main_cf_text=(rendered / "main.cf").read_text())
    pf = _run("postfix", postfix.address, postfix.port, sink, postfix.master_pid())
    postfix.stop()
    shutil.rmtree(rendered, ignore_errors=True)

    ratio = {k: round(hardener[k] / pf[k], 2) for k in ("accept_per_second", "e2e_per_second")}
    result = {"machine": {"cpus": os.cpu_count(), "kernel": os.uname().release,
                          "python": sys.version.split()[0]},
              "command": f"smtp-source -s {SESSIONS} -m {MESSAGES} -l {SIZE}",
              "hardener": hardener, "postfix": pf, "ratio_hardener_over_postfix": ratio}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print("\n" + json.dumps(result, indent=2))
