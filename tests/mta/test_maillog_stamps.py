"""Log time stamps, under an injected clock: Postfix's postlogd form for maillog_file (`Dec 07`,
zero-padded day) and the RFC 3164 form for syslog (`Dec  7`, space-padded), on a day 1-9 and a day
10-31, in any time zone and locale; and Debian's pflogsumm reads the file form of both days."""

from __future__ import annotations

import re
import socket
import subprocess
import time
from pathlib import Path

import pytest

from hardener.mta import maillog


def local_moment(year: int, month: int, day: int, hour: int, minute: int, second: int) -> float:
    """The epoch second that is this local wall-clock time, whatever the machine's time zone."""
    return time.mktime((year, month, day, hour, minute, second, 0, 0, -1))


@pytest.fixture
def restore_log():
    yield
    maillog.configure(maillog_file=None, use_syslog=False, use_stderr=False, clock=time.time)


@pytest.mark.parametrize(("day", "file_stamp", "syslog_stamp"), [
    (7, "Dec 07 23:09:14", "Dec  7 23:09:14"),
    (17, "Dec 17 23:09:14", "Dec 17 23:09:14"),
], ids=["day-1-9", "day-10-31"])
def test_stamp_forms(day, file_stamp, syslog_stamp):
    moment = local_moment(2026, 12, day, 23, 9, 14)
    assert maillog.format_stamp(moment, "file") == file_stamp
    assert maillog.format_stamp(moment, "syslog") == syslog_stamp


def test_english_month_names_in_any_locale(monkeypatch):
    # Postfix's daemons run in the C locale; a French LC_TIME must not give "déc."
    monkeypatch.setenv("LC_ALL", "fr_FR.UTF-8")
    assert maillog.format_stamp(local_moment(2026, 1, 2, 3, 4, 5), "file") == "Jan 02 03:04:05"


@pytest.mark.parametrize("day", [7, 17], ids=["day-1-9", "day-10-31"])
def test_each_destination_gets_its_own_stamp(tmp_path: Path, restore_log, day):
    moment = local_moment(2026, 12, day, 8, 30, 0)
    log_file = tmp_path / "maillog"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(tmp_path / "log.sock"))
    listener.settimeout(5)
    try:
        maillog.configure(maillog_file=str(log_file), use_syslog=True, hostname="mx.example.test",
                          clock=lambda: moment, syslog_socket=str(tmp_path / "log.sock"))
        maillog.get_logger("smtpd").info("connect from unknown[192.0.2.1]")
        maillog.flush()
        datagram = listener.recv(4096).decode()
    finally:
        listener.close()
    line = log_file.read_text()
    assert re.fullmatch(rf"Dec {day:02d} 08:30:00 mx hardener/smtpd\[\d+\]: "
                        r"connect from unknown\[192\.0\.2\.1\]\n", line), line
    # facility mail (2) * 8 + info (6) = 22; syslog adds the host name itself
    assert re.fullmatch(rf"<22>Dec {day:2d} 08:30:00 hardener/smtpd\[\d+\]: "
                        r"connect from unknown\[192\.0\.2\.1\]", datagram), datagram


def test_pflogsumm_reads_both_day_forms(tmp_path: Path, restore_log):
    log_file = tmp_path / "maillog"
    moments = iter([local_moment(2026, 12, 7, 9, 0, 0), local_moment(2026, 12, 17, 9, 0, 0)])
    moment = next(moments)
    maillog.configure(maillog_file=str(log_file), hostname="mx.example.test", clock=lambda: moment)
    for now in (moment, next(moments)):
        moment = now
        smtpd, cleanup, qmgr, smtp = (maillog.get_logger(c) for c in ("smtpd", "cleanup", "qmgr", "smtp"))
        qid = "4ABC" + ("1" if now == local_moment(2026, 12, 7, 9, 0, 0) else "2")
        smtpd.info("connect from client.example[192.0.2.1]")
        smtpd.info(f"{qid}: client=client.example[192.0.2.1]")
        cleanup.info(f"{qid}: message-id=<{qid}@client.example>")
        qmgr.info(f"{qid}: from=<sender@client.example>, size=300, nrcpt=1 (queue active)")
        smtp.info(f"{qid}: to=<user@example.net>, relay=sink[192.0.2.9]:25, delay=0.1, "
                  f"delays=0.01/0.01/0.04/0.04, dsn=2.0.0, status=sent (250 2.0.0 Ok)")
        qmgr.info(f"{qid}: removed")
        smtpd.info("disconnect from client.example[192.0.2.1]")
    maillog.flush()
    text = log_file.read_text()
    assert "Dec 07 09:00:00 mx hardener/smtpd[" in text and "Dec 17 09:00:00 mx" in text
    report = subprocess.run(["pflogsumm", "--syslog-name=hardener", str(log_file)],
                            capture_output=True, text=True, timeout=60)
    assert report.returncode == 0, report.stderr
    for label in ("received", "delivered"):
        m = re.search(rf"^\s*(\d+)\s+{label}\b", report.stdout, re.M)
        assert m and int(m.group(1)) == 2, report.stdout[:2000]
