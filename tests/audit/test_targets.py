"""Target parsing: host, host:port, [v6]:port, --targets-file with comments and bad lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from hardener.audit.context import AuditTarget
from hardener.audit.targets import parse_target, targets_from_file, unique
from hardener.errors import InputError


@pytest.mark.parametrize("text, host, port, display", [
    ("mx.example.com", "mx.example.com", 25, "mx.example.com:25"),
    ("mx.example.com:2525", "mx.example.com", 2525, "mx.example.com:2525"),
    ("127.0.0.2:2525", "127.0.0.2", 2525, "127.0.0.2:2525"),
    ("127.0.0.2", "127.0.0.2", 25, "127.0.0.2:25"),
    ("[::1]:25", "::1", 25, "[::1]:25"),
    ("[2001:db8::5]", "2001:db8::5", 25, "[2001:db8::5]:25"),
    ("2001:db8::5", "2001:db8::5", 25, "[2001:db8::5]:25"),
    ("  localhost:587 ", "localhost", 587, "localhost:587"),
])
def test_parse_target(text: str, host: str, port: int, display: str) -> None:
    target = parse_target(text)
    assert (target.host, target.port, target.display) == (host, port, display)


@pytest.mark.parametrize("text", ["", "host:", "host:0", "host:70000", "host:x", "[::1", "[nope]:25",
                                  "[::1]x", "bad_host!", "2001:db8::zz", "1.2.3"])
def test_bad_targets(text: str) -> None:
    with pytest.raises(ValueError):
        parse_target(text)


def test_default_port_applies_only_without_port() -> None:
    assert parse_target("a.example", 2525).port == 2525
    assert parse_target("a.example:26", 2525).port == 26


def test_targets_file(tmp_path: Path) -> None:
    path = tmp_path / "targets.txt"
    path.write_text("# gateways\n\nmx1.example.com\n127.0.0.2:2525  # lab\n  [::1]:25\n")
    targets = targets_from_file(path)
    assert [t.display for t in targets] == ["mx1.example.com:25", "127.0.0.2:2525", "[::1]:25"]


def test_targets_file_bad_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "targets.txt"
    path.write_text("mx1.example.com\n# fine\nmx2.example.com:99999\n")
    with pytest.raises(InputError) as err:
        targets_from_file(path)
    assert err.value.one_line() == f"{path}:3: port 99999 out of range 1-65535"


def test_targets_file_missing(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        targets_from_file(tmp_path / "nope.txt")
    assert "nope.txt" in err.value.one_line() and "cannot read" in err.value.one_line()


def test_unique_keeps_order() -> None:
    a, b = AuditTarget("a.example"), AuditTarget("b.example")
    assert unique([a, b, AuditTarget("A.example")]) == [a, b]
