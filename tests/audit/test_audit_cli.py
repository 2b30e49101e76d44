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
    (["127.0.0.1", "--trusted", "127.0.0.1/8"], "--trusted: '127.0.0.1/8' is not a network"),
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
