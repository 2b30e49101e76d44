"""render_report / emit_report: dispatch, atomic --output, exit codes from the model."""

from __future__ import annotations

import io
import json
import os
import stat

import pytest

from hardener.controls import Severity
from hardener.errors import EXIT_FINDINGS, EXIT_INCOMPLETE, EXIT_OK, InputError
from hardener.report.model import CheckStatus, Finding, Report, TargetResult
from hardener.report.output import FORMATS, emit_report, render_report, write_atomically
from tests.report.sample import clean_report, sample_report


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_renders_the_same_report_deterministically(fmt: str) -> None:
    first = render_report(sample_report(), fmt)
    assert first == render_report(sample_report(), fmt)
    assert first.endswith("\n")
    for finding_id in ("HRD-RELAY-001", "HRD-RELAY-002", "HRD-BANNER-001"):
        assert finding_id in first


def test_unknown_format_is_an_input_error() -> None:
    with pytest.raises(InputError) as err:
        render_report(sample_report(), "xml")
    assert "--format" in err.value.one_line()


@pytest.mark.parametrize("fail_on, expected", [
    (Severity.CRITICAL, EXIT_FINDINGS),  # two critical findings
    (Severity.HIGH, EXIT_FINDINGS),
    (Severity.INFO, EXIT_FINDINGS),
])
def test_exit_code_comes_from_findings(fail_on: Severity, expected: int) -> None:
    out = io.StringIO()
    assert emit_report(sample_report(), "json", None, fail_on, stream=out) == expected
    assert json.loads(out.getvalue()) == sample_report().to_dict()


def test_exit_code_incomplete_and_ok() -> None:
    incomplete = TargetResult(target="127.0.0.9:25", vantage="network", error="connection refused")
    incomplete.add(Finding.of("helo-not-required", "MAIL FROM before HELO -> 250"))  # low
    report = Report(targets=[incomplete])
    assert emit_report(report, "json", None, Severity.HIGH, stream=io.StringIO()) == EXIT_INCOMPLETE
    assert emit_report(report, "json", None, Severity.LOW, stream=io.StringIO()) == EXIT_FINDINGS
    assert emit_report(clean_report(), "table", None, Severity.INFO, stream=io.StringIO()) == EXIT_OK


def test_error_check_makes_target_incomplete() -> None:
    target = TargetResult(target="t", vantage="network")
    target.record("starttls-missing", CheckStatus.ERROR, "timeout")
    assert emit_report(Report(targets=[target]), "json", None, stream=io.StringIO()) == EXIT_INCOMPLETE


def test_output_file_written_whole_and_nothing_on_stdout(tmp_path, capsys) -> None:
    target = tmp_path / "report.sarif"
    target.write_text("old contents")
    code = emit_report(sample_report(), "sarif", target, Severity.CRITICAL)
    assert code == EXIT_FINDINGS
    assert json.loads(target.read_text())["version"] == "2.1.0"
    assert capsys.readouterr().out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.sarif"]  # no temporary left


def test_output_file_mode_follows_umask_and_existing_mode(tmp_path) -> None:
    old = os.umask(0o027)
    try:
        fresh = tmp_path / "fresh.json"
        write_atomically(fresh, "{}\n")
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o640
    finally:
        os.umask(old)
    existing = tmp_path / "existing.json"
    existing.write_text("x")
    existing.chmod(0o600)
    write_atomically(existing, "{}\n")
    assert stat.S_IMODE(existing.stat().st_mode) == 0o600
    assert existing.read_text() == "{}\n"


def test_output_into_missing_directory_or_onto_a_directory_is_refused(tmp_path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        emit_report(sample_report(), "json", tmp_path / "nope" / "r.json", Severity.HIGH)
    with pytest.raises(InputError, match="is a directory"):
        emit_report(sample_report(), "json", tmp_path, Severity.HIGH)
    assert list(tmp_path.iterdir()) == []


def test_failed_render_leaves_existing_file_untouched(tmp_path) -> None:
    target = tmp_path / "r.json"
    target.write_text("previous")
    with pytest.raises(InputError):
        emit_report(sample_report(), "bogus", target, Severity.HIGH)
    assert target.read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]
