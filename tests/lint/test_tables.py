"""Lint's table analysis on the shared reader (hardener.postfix.tables): catch-alls, line numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from hardener.lint.tables import read_table
from hardener.postfix.tables import read_alias_lines, read_postmap_lines, read_rule_lines, read_rules


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_hash_table_entries_with_lines_first_duplicate_wins(tmp_path: Path) -> None:
    path = write(tmp_path, "access", "# comment\nUser@Example.COM OK\n\nspam@x REJECT\n  go away\n"
                                     "user@example.com REJECT\n")
    table = read_table(f"hash:{path}")
    assert table.readable and table.source == str(path)
    assert [(e.key, e.value, e.line, e.catch_all) for e in table.entries] == [
        ("user@example.com", "OK", 2, False), ("spam@x", "REJECT  go away", 4, False)]  # joined as postmap joins


def test_missing_file_is_read_beside_main_cf(tmp_path: Path) -> None:
    write(tmp_path, "sender_access", "boss@example.com OK\n")
    table = read_table("hash:/etc/postfix/sender_access", tmp_path)
    assert table.source == str(tmp_path / "sender_access") and table.entries[0].line == 1
    missing = read_table("hash:/etc/postfix/nope", tmp_path)
    assert not missing.readable and missing.why_unreadable == "/etc/postfix/nope: no such file"


@pytest.mark.parametrize("kind, text, catch_all_lines", [
    ("cidr", "192.0.2.0/24 OK\n0.0.0.0/0 OK\n::/0 REJECT\n", [2, 3]),
    ("regexp", "/^postmaster@/ OK\n/.*/ OK\nif /x/\n/y/ OK\nendif\n!/^$/ RELAY\n", [2, 6]),
    ("pcre", "/./ OK\n/^root@/i REJECT\n/unclosed OK\n", [1]),
])
def test_rule_tables_mark_catch_alls(tmp_path: Path, kind: str, text: str,
                                     catch_all_lines: list[int]) -> None:
    table = read_table(f"{kind}:{write(tmp_path, kind, text)}")
    assert table.readable
    assert [e.line for e in table.entries if e.catch_all] == catch_all_lines
    assert all(not e.key.startswith(("if", "endif")) for e in table.entries)


def test_static_inline_proxy_and_unread_types(tmp_path: Path) -> None:
    assert read_table("static:{OK}").entries[0].catch_all
    inline = read_table("inline:{ user@example.com=OK, { spam@x = REJECT no } }")
    assert [(e.key, e.value) for e in inline.entries] == [("user@example.com", "OK"),
                                                          ("spam@x", "REJECT no")]
    path = write(tmp_path, "relay", "example.com OK\n")
    assert read_table(f"proxy:hash:{path}").entries[0].key == "example.com"
    ldap = read_table("ldap:/etc/postfix/ldap.cf")
    assert not ldap.readable and "ldap tables are not read by lint" in ldap.why_unreadable


def test_unreadable_table_says_why_in_one_line(tmp_path: Path) -> None:
    table = read_table("inline:user=OK")
    assert not table.readable and "must be enclosed in {}" in table.why_unreadable


def test_shared_line_readers_keep_duplicates_and_lines(tmp_path: Path) -> None:
    postmap = write(tmp_path, "map", "a 1\nA 2\nbad\n")
    assert [(e.key, e.value, e.line) for e in read_postmap_lines(postmap, strict=False)] == [
        ("a", "1", 1), ("a", "2", 2)]
    rules = write(tmp_path, "rules", "/a/ OK\n/unclosed OK\n")
    assert [(e.key, e.line) for e in read_rule_lines(rules, strict=False)] == [("/a/", 1)]
    with pytest.raises(Exception, match="missing closing delimiter"):
        read_rules(rules, strict=False)  # the dict reader keeps raising, as before
    aliases = write(tmp_path, "aliases", "root: admin\n  , ops\nRoot: other\nnocolon\n")
    assert [(e.key, e.value.split(), e.line) for e in read_alias_lines(aliases, strict=False)] == [
        ("root", ["admin", ",", "ops"], 1), ("root", ["other"], 3)]
