"""Lookup tables read from their source text, compared with what postmap / postalias build."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hardener.errors import ConfigError
from hardener.postfix import read_aliases, read_table

SOURCE = """\
# transport map
example.com     smtp:[10.1.2.3]:25
Example.ORG     relay:[mx.example.org]
  # comment between continuation lines
    extra
.sub.example.com error:no mail here
example.com     smtp:[duplicate]
"quoted key"    v
"""

ALIASES = """\
# aliases
root: admin@example.com, "|/usr/bin/logger a, b"
  , other
Postmaster:root
"with space": target
mailer-daemon: postmaster
root: ignored-duplicate
"""


def _postmap_s(spec: str) -> dict[str, str]:
    out = subprocess.run(["postmap", "-s", spec], capture_output=True, text=True, check=True,
                         timeout=60).stdout
    return dict(line.split("\t", 1) for line in out.splitlines())


def test_texthash_matches_postmap(tmp_path: Path) -> None:
    source = tmp_path / "transport"
    source.write_text(SOURCE)
    ours = read_table(f"texthash:{source}")
    assert ours == _postmap_s(f"texthash:{source}")
    assert ours["example.org"] == "relay:[mx.example.org]    extra"
    assert ours["example.com"] == "smtp:[10.1.2.3]:25"      # first wins, as postmap


def test_hash_reads_source_relative_to_base_dir(tmp_path: Path) -> None:
    (tmp_path / "transport").write_text(SOURCE)
    assert read_table("hash:transport", tmp_path) == read_table(f"texthash:{tmp_path}/transport")
    assert read_table(f"proxy:lmdb:{tmp_path}/transport")[".sub.example.com"] == "error:no mail here"


def test_inline_static_and_cidr(tmp_path: Path) -> None:
    assert read_table("inline:{ a=b, { C = d e }, f=g }") == {"a": "b", "c": "d e", "f": "g"}
    assert read_table("static:OK") == {"*": "OK"}
    (tmp_path / "clients.cidr").write_text("10.0.0.0/8 OK\n[2001:db8::]/32  REJECT no\n")
    assert read_table(f"cidr:{tmp_path}/clients.cidr") == {"10.0.0.0/8": "OK",
                                                           "[2001:db8::]/32": "REJECT no"}


def test_table_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not supported"):
        read_table("ldap:/etc/postfix/ldap.cf")
    with pytest.raises(ConfigError) as err:
        read_table(f"hash:{tmp_path}/missing")
    assert err.value.file == f"{tmp_path}/missing"
    (tmp_path / "bad").write_text("good value\nnovalue\n")
    with pytest.raises(ConfigError) as err:
        read_table(f"hash:{tmp_path}/bad")
    assert err.value.line == 2 and "key whitespace value" in err.value.message
    assert read_table(f"hash:{tmp_path}/bad", strict=False) == {"good": "value"}
    with pytest.raises(ConfigError, match="key=value"):
        read_table("inline:{ novalue }")


def test_aliases_match_postalias(tmp_path: Path) -> None:
    path = tmp_path / "aliases"
    path.write_text(ALIASES)
    ours = read_aliases(path)
    assert ours["root"] == ["admin@example.com", '"|/usr/bin/logger a, b"', "other"]
    assert ours["postmaster"] == ["root"] and ours["with space"] == ["target"]
    subprocess.run(["postalias", f"hash:{path}"], capture_output=True, check=True, timeout=60)
    theirs = _postmap_s(f"hash:{path}")
    for name, targets in ours.items():
        assert [t.strip() for t in theirs[name].split(",") if t.strip()] == \
            [p.strip() for t in targets for p in t.split(",")], name


def test_alias_without_colon_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "aliases"
    path.write_text("root: admin\nbad line\n")
    with pytest.raises(ConfigError) as err:
        read_aliases(path)
    assert err.value.one_line().startswith(f"{path}:2: ")
    assert read_aliases(path, strict=False) == {"root": ["admin"]}
