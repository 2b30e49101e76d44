"""Audit speed: hardener's relay battery versus nmap's smtp-open-relay, and 200 targets at once.

    make bench        (or: .venv/bin/python -m pytest -q -s -m bench -o addopts='' bench/bench_audit.py)

Measured in one run on loopback:

1. The relay battery against one Postfix, from an untrusted source address (127.1.0.9), for two
   servers: a refusing Postfix (Debian defaults, mynetworks = 127.0.0.1/32) and an open relay
   (mynetworks = 0.0.0.0/0). hardener: the `relay` check alone through the audit runner (connect,
   greeting, EHLO, the 16 forms, RSET/QUIT). nmap: `nmap -n -Pn -sV -p PORT --script smtp-open-relay
   -S 127.1.0.9 -e lo ADDR` (its 16 tests), wall time of the process. Median of REPEAT runs each;
   ratio = nmap / hardener. Also timed: nmap forced onto the port without service detection
   (`--script +smtp-open-relay`, no -sV), and a whole `hardener audit` process of the same server
   (every network check, Python start-up included), the fairest process-to-process comparison.
2. A full audit of 200 loopback targets at --concurrency 50: one Postfix instance whose master.cf
   has 200 smtpd services, one per loopback address (127.X.Y.Z added to lo), same port, STARTTLS
   with a certificate from the test CA (--ca-file), so the TLS handshakes are part of the audit;
   `hardener audit --targets-file FILE --concurrency 50 --format json` wall time, every target
   must come back complete.

Results are printed and written to /var/tmp/hardener-tests/bench_audit.json; docs/benchmarks.md
"## Audit" reports them. HARDENER_BENCH_TARGETS overrides the 200 (for a quick try).
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hardener.audit.context import AuditOptions, AuditTarget  # noqa: E402
from hardener.audit.runner import audit_all  # noqa: E402
from tests.fixtures.net import free_port, loopback  # noqa: E402,F401
from tests.fixtures.postfix import postfix_factory  # noqa: E402,F401
from tests.fixtures.tls import cert_factory  # noqa: E402,F401

UNTRUSTED = "127.1.0.9"
REPEAT = 3
TARGETS = int(os.environ.get("HARDENER_BENCH_TARGETS", "200"))
CONCURRENCY = 50
RESULTS = Path("/var/tmp/hardener-tests/bench_audit.json")
# smtpd_peername_lookup = no: no reverse DNS of the client (this machine's resolver is off-loopback
# and unreachable: every lookup would wait 5 s and send packets off the machine).
# in_flow_delay = 0: every MAIL FROM opens a queue file that RSET discards; with nothing delivered,
# Postfix's flow-control tokens run out after a few hundred and cleanup then sleeps up to 1 s per
# MAIL FROM, which would time Postfix's throttle instead of the tools (both tools alike).
BASE = {"smtpd_banner": "$myhostname ESMTP", "mynetworks": "127.0.0.1/32", "smtpd_peername_lookup": "no",
        "in_flow_delay": "0"}


def machine() -> dict[str, str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": str(os.cpu_count()), "cpu": model, "python": platform.python_version(),
            "nmap": subprocess.run(["nmap", "--version"], capture_output=True, text=True).stdout.split("\n")[0]}


def time_hardener_relay(address: str, port: int) -> tuple[float, list[str]]:
    options = AuditOptions(source_addresses=(UNTRUSTED,), timeout=10.0, checks=("relay",))
    start = time.perf_counter()
    report = asyncio.run(audit_all([AuditTarget(address, port)], options))
    elapsed = time.perf_counter() - start
    target = report.targets[0]
    assert target.status == "complete", target.to_dict()
    return elapsed, sorted({f.check for f in target.findings})


def time_hardener_full(address: str, port: int, extra: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "hardener", "audit", f"{address}:{port}",
                           "--source-address", UNTRUSTED, "--format", "json", "--timeout", "10", *extra],
                          capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - start
    assert proc.returncode in (0, 1), proc.stderr
    return elapsed


def time_nmap_relay(address: str, port: int, *, service_scan: bool = True) -> tuple[float, str]:
    """nmap's smtp-open-relay: with -sV (how the script runs on a non-standard port by default) or,
    service_scan=False, forced with `--script +smtp-open-relay` (no service detection)."""
    scan = ["-sV", "--script", "smtp-open-relay"] if service_scan else ["--script", "+smtp-open-relay"]
    start = time.perf_counter()
    proc = subprocess.run(["nmap", "-n", "-Pn", *scan, "-p", str(port), "-S", UNTRUSTED, "-e", "lo", address],
                          capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr
    verdict = next((line.strip("|_ ") for line in proc.stdout.splitlines() if "smtp-open-relay" in line),
                   "(no verdict)")
    return elapsed, verdict


@pytest.mark.bench
@pytest.mark.timeout(1800)
def test_bench_audit(postfix_factory, loopback, cert_factory, tmp_path) -> None:
    results: dict[str, object] = {"machine": machine(), "repeat": REPEAT}
    # STARTTLS with a certificate from the test CA (trusted with --ca-file), TLS >= 1.2: a whole
    # audit includes the TLS checks' handshakes.
    cert = cert_factory.valid("pf.hardener.test")
    base = {**BASE, "smtpd_tls_security_level": "may", "smtpd_tls_chain_files": str(cert.combined),
            "smtpd_tls_protocols": ">=TLSv1.2", "smtpd_tls_mandatory_protocols": ">=TLSv1.2"}
    ca = ["--ca-file", str(cert.ca)]

    # 1. relay battery: hardener vs nmap, on a refusing Postfix and on an open relay
    servers = {"refusing Postfix": postfix_factory(base),
               "open relay": postfix_factory({**base, "mynetworks": "0.0.0.0/0"})}
    battery: dict[str, dict[str, object]] = {}
    for label, inst in servers.items():
        hardener_times, nmap_times, nmap_plain_times, full_times = [], [], [], []
        findings: list[str] = []
        verdict = ""
        for _ in range(REPEAT):
            elapsed, findings = time_hardener_relay(inst.address, inst.port)
            hardener_times.append(elapsed)
            elapsed, verdict = time_nmap_relay(inst.address, inst.port)
            nmap_times.append(elapsed)
            nmap_plain_times.append(time_nmap_relay(inst.address, inst.port, service_scan=False)[0])
        for _ in range(3):
            full_times.append(time_hardener_full(inst.address, inst.port, ca))
        h, n = statistics.median(hardener_times), statistics.median(nmap_times)
        plain = statistics.median(nmap_plain_times)
        full = statistics.median(full_times)
        battery[label] = {"hardener_relay_s": round(h, 3), "nmap_relay_s": round(n, 3),
                          "ratio_nmap_over_hardener": round(n / h, 1),
                          "nmap_relay_without_sV_s": round(plain, 3),
                          "ratio_nmap_without_sV_over_hardener": round(plain / h, 1),
                          "ratio_nmap_over_hardener_cli": round(n / full, 1),
                          "hardener_full_audit_s": round(full, 3),
                          "hardener_findings": findings, "nmap_verdict": verdict,
                          "hardener_all_s": [round(t, 3) for t in hardener_times],
                          "nmap_all_s": [round(t, 3) for t in nmap_times]}
        print(f"\n{label}: hardener relay battery {h:.3f}s, nmap -sV smtp-open-relay {n:.3f}s "
              f"(ratio {n / h:.1f}), nmap +smtp-open-relay without -sV {plain:.3f}s; "
              f"full `hardener audit` process {full:.3f}s")
    results["relay_battery"] = battery
    for inst in servers.values():
        inst.stop()

    # 2. full audit of TARGETS loopback targets at --concurrency 50, one Postfix with a service each
    addresses = [loopback.host() for _ in range(TARGETS)]
    port = free_port(addresses[0])
    services = "".join(f"{a}:{port} inet n - n - - smtpd\n" for a in addresses[1:])
    postfix_factory(base, address=addresses[0], port=port, extra_services=services)
    targets_file = tmp_path / "targets.txt"
    targets_file.write_text("".join(f"{a}:{port}\n" for a in addresses))
    report_file = tmp_path / "report.json"
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "hardener", "audit", "--targets-file", str(targets_file),
                           "--concurrency", str(CONCURRENCY), "--source-address", UNTRUSTED,
                           "--format", "json", "--output", str(report_file), "--timeout", "10", *ca],
                          capture_output=True, text=True, timeout=1800)
    elapsed = time.perf_counter() - start
    assert proc.returncode in (0, 1), proc.stderr
    report = json.loads(report_file.read_text())
    incomplete = [t["target"] for t in report["targets"] if t["status"] != "complete"]
    tls_passed = sum(1 for t in report["targets"] for c in t["checks"]
                     if c["check"] == "tls-cert-invalid" and c["status"] == "passed")
    results["many_targets"] = {"targets": TARGETS, "concurrency": CONCURRENCY,
                               "wall_s": round(elapsed, 2), "targets_per_s": round(TARGETS / elapsed, 1),
                               "incomplete": len(incomplete), "tls_cert_checks_passed": tls_passed,
                               "setup": f"one Postfix 3.7, {TARGETS} smtpd services in master.cf, one "
                                        f"per loopback address, port {port}, STARTTLS (TLS >= 1.2)"}
    print(f"\n{TARGETS} targets at --concurrency {CONCURRENCY}: {elapsed:.2f}s "
          f"({TARGETS / elapsed:.1f} targets/s), incomplete: {len(incomplete)}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))
    assert not incomplete, incomplete[:5]
