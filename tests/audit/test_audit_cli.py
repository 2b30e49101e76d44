"""`hardener audit` command line: bad input is one line and exit 2; every format renders."""

from __future__ import annotations

import io
import socket
from pathlib import Path

import pytest

from hardener.audit.runner import show_progress
from hardener.cli import main as cli_main


def _run(args: list[str], capsys) -> tuple[int, str, str]:
    code = cli_main(["audit", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("args, message", [
    ([], "TARGET: no target given"),
    (["mx.example.com:99999"], "TARGET: port 99999 out of range 1-65535"),
    (["127.0.0.1", "--source-address", "nope"], "--source-address: 'nope' is not an IP address"),
    (["127.0.0.1", "--source-address", "192.0.2.7"], "--source-address: cannot use 192.0.2.7"),
    (["127.0.0.1", "--trusted", "127.0.0.1/8"],
     "--trusted: '127.0.0.1/8' is not a network: host bits are set (did you mean 127.0.0.0/8?)"),
    (["127.0.0.1", "--trusted", "nowhere"], "--trusted: 'nowhere' is not a network"),
    (["127.0.0.1", "--relay-canary", "c@canary.test"], "--relay-canary: --relay-canary sends a real"),
    (["127.0.0.1", "--rcpt", "not-an-address"], "--rcpt: 'not-an-address' is not an address"),
    (["127.0.0.1", "--timeout", "0"], "--timeout: 0 must be more than 0 seconds"),
    (["127.0.0.1", "--concurrency", "0"], "--concurrency: 0 must be at least 1"),
    (["127.0.0.1", "--relay-domain", "no domain"], "--relay-domain: 'no domain' is not a domain"),
    (["127.0.0.1", "--resolver", "127.0.0.1"], "--resolver: --resolver is only used with --mx"),
    (["127.0.0.1", "--format", "xml"], "--format: unknown format 'xml'"),
    (["127.0.0.1", "--fail-on", "urgent"], "--fail-on: unknown severity 'urgent'"),
])
def test_bad_input_is_one_line_exit_2(args: list[str], message: str, capsys) -> None:
    code, out, err = _run(args, capsys)
    assert code == 2
    assert message in err, err
    assert "Traceback" not in err and out == ""


def test_bad_targets_file_and_baseline_name_file_and_line(tmp_path: Path, capsys) -> None:
    targets = tmp_path / "targets.txt"
    targets.write_text("127.0.0.1\n\n[::1\n")
    code, _out, err = _run(["--targets-file", str(targets)], capsys)
    assert code == 2 and f"{targets}:3: '[::1': missing ']'" in err
    baseline = tmp_path / "baseline.yaml"
    baseline.write_text("- control: HRD-RELAY-001\n  expires: soon\n")
    code, _out, err = _run(["127.0.0.1", "--baseline", str(baseline)], capsys)
    assert code == 2 and f"{baseline}:1: expires: 'soon' is not a date" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("fmt, marker", [("table", "incomplete"), ("json", '"schema": 1'),
                                         ("sarif", '"version": "2.1.0"'), ("junit", "<testsuite"),
                                         ("markdown", "#")])
def test_every_format_for_an_unreachable_target(fmt: str, marker: str, capsys) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, out, err = _run([f"127.0.0.1:{port}", "--timeout", "1", "--format", fmt], capsys)
    assert code == 3
    assert marker in out
    assert "Traceback" not in err


def test_progress_bar_only_on_a_terminal_outside_ci(monkeypatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("CI", raising=False)
    assert show_progress("table", Tty())
    assert not show_progress("json", Tty())
    assert not show_progress("table", io.StringIO())
    monkeypatch.setenv("CI", "true")
    assert not show_progress("table", Tty())


def _listener() -> socket.socket:
    """A listening socket on 127.0.0.1 that nobody should connect to."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4)
    sock.setblocking(False)
    return sock


def _nobody_connected(sock: socket.socket) -> bool:
    try:
        sock.accept()[0].close()
    except BlockingIOError:
        return True
    return False


@pytest.mark.parametrize("content, message", [
    (None, "cannot read: No such file or directory"),
    (b"", "is empty, expected PEM CA certificates"),
    (b"0\x82\x03\x1e0\x82\x02\x06\xa0\x03", "is not PEM (binary data"),
    (b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
     "holds no PEM certificate OpenSSL can read"),
    (b"just some text\n", "holds no PEM certificate OpenSSL can read"),
])
def test_bad_ca_file_is_one_line_exit_2_before_any_connection(tmp_path: Path, capsys, content,
                                                              message: str) -> None:
    ca = tmp_path / "ca.pem"
    if content is not None:
        ca.write_bytes(content)
    with _listener() as server:
        port = server.getsockname()[1]
        code, out, err = _run([f"127.0.0.1:{port}", "--ca-file", str(ca)], capsys)
        assert _nobody_connected(server)
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1
    assert err.startswith(f"hardener: error: {ca}: --ca-file: {message}")


def test_a_ca_directory_is_refused(tmp_path: Path, capsys) -> None:
    code, _out, err = _run(["127.0.0.1:1", "--ca-file", str(tmp_path)], capsys)
    assert code == 2 and err == f"hardener: error: {tmp_path}: --ca-file: cannot read: Is a directory\n"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_expired_baseline_note_is_in_the_report_and_on_stderr(tmp_path: Path, capsys) -> None:
    import json

    baseline = tmp_path / "baseline.yaml"
    baseline.write_text("- check: banner-leak\n  reason: old box\n  expires: 2020-01-31\n")
    target = f"127.0.0.1:{_closed_port()}"
    code, out, err = _run([target, "--timeout", "1", "--format", "json", "--baseline", str(baseline)],
                          capsys)
    assert code == 3
    [note] = json.loads(out)["notes"]
    assert note.startswith(f"{baseline}:1: suppression of HRD-BANNER-001 on * expired on 2020-01-31")
    assert f"hardener: note: {note}" in err.splitlines()
    # a table on stdout shows the note itself: not said twice
    code, out, err = _run([target, "--timeout", "1", "--baseline", str(baseline)], capsys)
    assert "Notes:" in out and "expired on 2020-01-31" in out and "hardener: note" not in err
