"""The parser against Postfix itself: for every corpus file, every parameter Postfix knows (which
includes every parameter the project reads) must expand exactly as `postconf -c DIR -x` does."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hardener.postfix import defaults
from hardener.postfix.maincf import load_main_cf
from tests.postfix.postconf_tools import normalized, postconf, postconf_all_expanded, postconf_expanded

CORPUS = Path(__file__).parent / "corpus"
CORPUS_FILES = sorted(CORPUS.glob("*.cf"))
# Values that change while tests run: other tests add loopback addresses (mynetworks default).
VOLATILE = {"mynetworks", "smtpd_forbid_bare_newline_exclusions",
            "smtpd_client_event_limit_exceptions", "proxy_read_maps"}


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    shutil.copy("/etc/postfix/master.cf", tmp_path / "master.cf")
    return tmp_path




@pytest.mark.parametrize("corpus_file", CORPUS_FILES, ids=[p.stem for p in CORPUS_FILES])
def test_corpus_matches_postconf(corpus_file: Path, config_dir: Path) -> None:
    shutil.copy(corpus_file, config_dir / "main.cf")
    cf = load_main_cf(config_dir)
    theirs = postconf_all_expanded(config_dir)
    del theirs["process_id"]
    names = list(theirs)
    assert set(defaults.PROJECT_PARAMETERS) <= set(names)
    ours_before = {n: normalized(cf.get(n)) for n in names}
    ours_after = {n: normalized(load_main_cf(config_dir).get(n)) for n in VOLATILE & set(names)}
    mismatches = []
    for name in names:
        if name in VOLATILE and ours_before[name] != ours_after[name]:
            continue  # the machine changed between the two readings
        if ours_before[name] != theirs[name]:
            mismatches.append(f"{name}: ours={ours_before[name]!r} postconf={theirs[name]!r}")
    assert not mismatches, "\n".join(mismatches)


@pytest.mark.parametrize("corpus_file", CORPUS_FILES, ids=[p.stem for p in CORPUS_FILES])
def test_corpus_raw_and_names_match_postconf_n(corpus_file: Path, config_dir: Path) -> None:
    """`postconf -n` lists what the file sets, unexpanded: same names, same raw values."""
    shutil.copy(corpus_file, config_dir / "main.cf")
    cf = load_main_cf(config_dir)
    theirs = {}
    for line in postconf(config_dir, "-n").splitlines():
        name, _, value = line.partition(" = ")
        theirs[name.rstrip(" =")] = value
    theirs.pop("config_directory", None)  # postconf -c DIR reports it as set
    ours = {n: normalized(cf.raw(n) or "") for n in cf.names()}
    assert ours == theirs


def test_mynetworks_default_matches_postconf_d(config_dir: Path) -> None:
    (config_dir / "main.cf").write_text("")
    for style in ("host", "subnet", "class"):
        (config_dir / "main.cf").write_text(f"mynetworks_style = {style}\n")
        for _ in range(3):  # another test may add a loopback address between the readings
            ours = load_main_cf(config_dir).get("mynetworks")
            theirs = postconf_expanded(config_dir, ["mynetworks"])["mynetworks"]
            if ours == theirs:
                break
        assert ours == theirs, style


def test_generated_defaults_are_current() -> None:
    """defaults_37.py must equal the installed `postconf -d` (regenerate with gen_defaults.py)."""
    out = postconf(Path("/etc/postfix"), "-d")
    live = {}
    for line in out.splitlines():
        name, _, value = line.partition(" = ")
        live[name.rstrip(" =")] = value
    for name in defaults.MACHINE_DEPENDENT:
        live.pop(name, None)
    from hardener.postfix.defaults_37 import POSTCONF_D
    assert POSTCONF_D == live
