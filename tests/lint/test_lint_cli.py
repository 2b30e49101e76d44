"""`hardener lint PATH`: formats, --output, --fail-on, --trusted, exit codes and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hardener.cli import main
from hardener.report.output import FORMATS
from tests.lint.conftest import CORPUS

DEBIAN = CORPUS / "debian-default"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["lint", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_debian_default_table_names_lines_and_exits_1(capsys, monkeypatch) -> None:
    monkeypatch.chdir(DEBIAN)  # short paths: the table wraps long ones
    code, out, err = run(capsys, "main.cf")
    assert code == 1 and err == ""  # smtp-smuggling is high, the default --fail-on
    assert "main.cf:9" in out and "banner-leak" in out
    assert "vrfy-enabled" in out and "smtp-smuggling" in out


def test_debian_default_json(capsys) -> None:
    code, out, _ = run(capsys, DEBIAN / "main.cf", "--format", "json")
    report = json.loads(out)
    assert code == 1 and report["schema"] == 1
    (target,) = report["targets"]
    assert target["vantage"] == "config" and target["status"] == "complete"
    banner = [f for f in target["findings"] if f["check"] == "banner-leak"]
    assert banner[0]["location"]["line"] == 9 and banner[0]["control"] == "HRD-BANNER-001"
    assert "Postfix (Debian/GNU)" in banner[0]["evidence"]
    vrfy = [f for f in target["findings"] if f["check"] == "vrfy-enabled"][0]
    assert vrfy["location"] == {"file": str(DEBIAN / "main.cf"), "line": None}
    expn = [c for c in target["checks"] if c["check"] == "expn-enabled"][0]
    assert expn["status"] == "passed" and "has no EXPN command" in expn["detail"]


@pytest.mark.parametrize("fail_on, code", [("critical", 0), ("high", 1), ("info", 1)])
def test_fail_on(capsys, fail_on: str, code: int) -> None:
    assert run(capsys, DEBIAN, "--fail-on", fail_on)[0] == code


def test_clean_config_exits_0(capsys, corpus_case) -> None:
    code, out, _ = run(capsys, corpus_case("baseline"), "--fail-on", "low")
    assert code == 0 and "0 findings" in out


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_renders(capsys, fmt: str, tmp_path: Path) -> None:
    output = tmp_path / f"report.{fmt}"
    code, out, err = run(capsys, DEBIAN, "--format", fmt, "--output", output)
    if code == 2 and "hardener.report.formats" in err:
        pytest.skip(f"format {fmt} not there yet")
    assert code == 1 and out == ""
    assert "banner-leak" in output.read_text() or "HRD-BANNER-001" in output.read_text()


def test_trusted_narrows_mynetworks(capsys, corpus_case) -> None:
    case = corpus_case("baseline")
    code, out, _ = run(capsys, case, "--format", "json", "--trusted", "10.9.0.0/16")
    findings = json.loads(out)["targets"][0]["findings"]
    broad = [f for f in findings if f["check"] == "mynetworks-too-broad"]
    assert code == 1 and len(broad) == 1
    assert "10.1.2.0/28 is outside the declared trusted networks" in broad[0]["evidence"]
    code, out, _ = run(capsys, case, "--format", "json", "--trusted", "10.1.0.0/16")
    assert code == 0


@pytest.mark.parametrize("text, where, what", [
    ("myhostname = mx.example.com\nthis line has no equals sign\n", "main.cf:2:", "missing '='"),
    ("  orphan = continuation\nmyhostname = mx.example.com\n", "main.cf:1:", "must not start with whitespace"),
    ("disable_vrfy_command = perhaps\n", "main.cf:1:", "bad boolean"),
    ("smtpd_banner = ${myhostname\n", "main.cf:1:", "macro processing error"),
])
def test_parse_errors_are_one_line_exit_2(capsys, tmp_path: Path, text: str, where: str, what: str) -> None:
    (tmp_path / "main.cf").write_text(text)
    code, out, err = run(capsys, tmp_path)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("hardener: error: ")
    assert f"{tmp_path / 'main.cf'}" in err and where in err and what in err


def test_master_cf_error_names_master_cf(capsys, tmp_path: Path) -> None:
    (tmp_path / "main.cf").write_text("compatibility_level = 3.6\n")
    (tmp_path / "master.cf").write_text("smtp inet n - y - - smtpd\nbroken line\n")
    code, _, err = run(capsys, tmp_path)
    assert code == 2 and "master.cf:2" in err and err.count("\n") == 1


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing.cf", "no such file"),
    (lambda d: d, "no main.cf in this directory"),
    (lambda d: Path("/dev/null"), "not a regular file"),
])
def test_unusable_path_exit_2(capsys, tmp_path: Path, make, message: str) -> None:
    code, out, err = run(capsys, make(tmp_path))
    assert code == 2 and out == "" and message in err and err.count("\n") == 1


def test_bad_trusted_and_bad_format_exit_2(capsys) -> None:
    code, out, err = run(capsys, DEBIAN, "--trusted", "10.0.0.0/33")
    assert code == 2 and out == ""
    assert err == ("hardener: error: --trusted: '10.0.0.0/33' is not a network (expected "
                   "ADDRESS/LENGTH, e.g. 10.1.2.0/24, or one address)\n")
    code, _, err = run(capsys, DEBIAN, "--trusted", "10.1.2.3/24")  # as Postfix: host bits refused
    assert code == 2 and "did you mean 10.1.2.0/24?" in err
    assert run(capsys, DEBIAN, "--format", "yaml")[0] == 2
    assert run(capsys, DEBIAN, "--fail-on", "severe")[0] == 2


def test_output_is_written_atomically_and_nothing_on_error(capsys, tmp_path: Path) -> None:
    output = tmp_path / "report.json"
    code, out, _ = run(capsys, tmp_path / "nothing-here", "--format", "json", "--output", output)
    assert code == 2 and not output.exists()
    code, out, _ = run(capsys, DEBIAN, "--format", "json", "--output", output)
    assert code == 1 and out == "" and json.loads(output.read_text())["schema"] == 1
