"""`hardener render` and `hardener profiles` through the real command line (subprocess)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from hardener.controls.catalog import by_id

DONE_WHEN = ["null-client", "--set", "myhostname=app1.example.com",
             "--set", "relayhost=[smtp.example.com]:587"]


def hardener(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hardener", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=60)


def digest_tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_done_when_render_is_deterministic(tmp_path: Path) -> None:
    first = hardener("render", *DONE_WHEN[:1], "--out", "out", *DONE_WHEN[1:], cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    files = digest_tree(tmp_path / "out")
    assert sorted(files) == ["aliases", "main.cf", "master.cf", "systemd/hardener-mta.service"]
    second = hardener("render", *DONE_WHEN[:1], "--out", "out", *DONE_WHEN[1:], cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert digest_tree(tmp_path / "out") == files
    other = hardener("render", *DONE_WHEN[:1], "--out", "again", *DONE_WHEN[1:], cwd=tmp_path)
    assert other.returncode == 0 and digest_tree(tmp_path / "again") == files
    main_cf = (tmp_path / "out" / "main.cf").read_text()
    assert "relayhost = [smtp.example.com]:587" in main_cf
    assert "myhostname = app1.example.com" in main_cf
    assert not list(tmp_path.glob(".out.tmp-*")), "staging directory left behind"


def test_done_when_newline_injection_exits_2_and_leaves_out_untouched(tmp_path: Path) -> None:
    ok = hardener("render", *DONE_WHEN[:1], "--out", "out", *DONE_WHEN[1:], cwd=tmp_path)
    assert ok.returncode == 0
    before = digest_tree(tmp_path / "out")
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*")}
    bad = hardener("render", "null-client", "--out", "out",
                   "--set", "myhostname=evil.example.com\nmynetworks = 0.0.0.0/0",
                   "--set", "relayhost=[smtp.example.com]:587", cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stdout == ""
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1, bad.stderr
    assert "--set myhostname" in lines[0] and "newline" in lines[0]
    assert "Traceback" not in bad.stderr
    assert digest_tree(tmp_path / "out") == before
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*")} == mtimes
    fresh = hardener("render", "null-client", "--out", "fresh",
                     "--set", "myhostname=evil.example.com\nmynetworks = 0.0.0.0/0", cwd=tmp_path)
    assert fresh.returncode == 2 and not (tmp_path / "fresh").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("args, expected", [
    (["--set", "myhostname=app1"], "--set myhostname: 'app1' is not a fully qualified host name"),
    (["--set", "mynetworks=10.0.0.1/8"], "--set mynetworks: '10.0.0.1/8' is not a valid IPv4 network"),
    (["--set", "nosuchkey=1"], "--set nosuchkey: unknown key"),
    (["--set", "relayhost=smtp.example.com\r"], "--set relayhost: contains a carriage return"),
    (["--set", "smtpd_banner=$myhostname ESMTP $mail_version"], "--set smtpd_banner: $mail_version"),
    (["--set", "message_size_limit=0"], "--set message_size_limit: '0' is not a whole number"),
])
def test_bad_set_values_give_one_line_and_exit_2(tmp_path: Path, args: list[str], expected: str) -> None:
    proc = hardener("render", *DONE_WHEN, *args, "--out", "out", cwd=tmp_path)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert expected in proc.stderr
    assert not (tmp_path / "out").exists()


def test_missing_required_key_names_profile_file_and_key(tmp_path: Path) -> None:
    proc = hardener("render", "null-client", "--out", "out", "--set", "myhostname=a.example.com",
                    cwd=tmp_path)
    assert proc.returncode == 2
    assert "profiles/null-client.yaml" in proc.stderr and "relayhost: required" in proc.stderr


def test_vars_file_error_names_file_line_and_key(tmp_path: Path) -> None:
    (tmp_path / "site.yaml").write_text("myhostname: mx1.example.com\nrelayhost: '[bad host]:25'\n")
    proc = hardener("render", "null-client", "--out", "out", "--vars", "site.yaml", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("hardener: error: site.yaml:2: relayhost:")


def test_unknown_profile_exits_2(tmp_path: Path) -> None:
    proc = hardener("render", "no-such-profile", "--out", "out", cwd=tmp_path)
    assert proc.returncode == 2 and "unknown profile 'no-such-profile'" in proc.stderr


def test_profiles_list_and_show() -> None:
    listing = hardener("profiles", "list")
    assert listing.returncode == 0
    assert [line.split()[0] for line in listing.stdout.splitlines()] == \
        ["mx-gateway", "null-client", "outbound-relay"]
    show = hardener("profiles", "show", "mx-gateway")
    assert show.returncode == 0, show.stderr
    for key in ("internal_nexthop", "admin_address", "relay_domains", "smtpd_listen", "mynetworks",
                "message_size_limit", "config_directory", "queue_directory"):
        assert key in show.stdout
    assert "deviation smtpd_client_restrictions" in show.stdout
    assert hardener("profiles", "show", "nope").returncode == 2


def test_every_control_comment_names_a_catalog_control(tmp_path: Path) -> None:
    proc = hardener("render", *DONE_WHEN, "--out", "out", cwd=tmp_path)
    assert proc.returncode == 0
    import re
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            for control_id in re.findall(r"HRD-[A-Z]+-\d{3}", path.read_text()):
                by_id(control_id)


def test_site_profile_extending_a_builtin(tmp_path: Path) -> None:
    (tmp_path / "site.yaml").write_text(
        "extends: mx-gateway\ndescription: example.com inbound\n"
        "settings:\n  relay_domains: example.com\n  internal_nexthop: '[10.1.2.3]:25'\n"
        "  message_size_limit: 20480000\n")
    (tmp_path / "vars.yaml").write_text("myhostname: mx1.example.com\nmessage_size_limit: 30720000\n")
    proc = hardener("render", "site.yaml", "--out", "out", "--vars", "vars.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    main_cf = (tmp_path / "out" / "main.cf").read_text()
    assert "# main.cf -- profile site," in main_cf
    assert "message_size_limit = 30720000" in main_cf
    assert (tmp_path / "out" / "transport").read_text().splitlines()[-1].split() == \
        ["example.com", "smtp:[10.1.2.3]:25"]
    show = hardener("profiles", "show", "site.yaml", cwd=tmp_path)
    assert "extends: mx-gateway -> site" in show.stdout
