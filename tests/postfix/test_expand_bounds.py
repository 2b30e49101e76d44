"""Bounds on reading main.cf: the `$name` expansion bomb, huge lines and huge files are refused with
one line naming file, line and parameter, and the real corpus stays far inside every bound.

Postfix itself has no such bounds (mac_expand limits only the nesting depth; `postconf -c DIR -x
x25` of the bomb below takes 14 s and 830 MB on Postfix 3.7), so these limits are hardener's own.
No test here measures time or memory: the work done is read from counters (the lookups made, the
Budget of one expansion) and a guard in the lookup stops an unbounded expansion early.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hardener.errors import ConfigError
from hardener.postfix.expand import (MAX_REFERENCES, MAX_RESULT_LENGTH, Budget, ExpandError,
                                     ExpansionLimit, expand)
from hardener.postfix.maincf import (MAX_FILE_SIZE, MAX_LINE_LENGTH, load_main_cf, parse_main_cf)

CORPUS = sorted((Path(__file__).parent / "corpus").glob("*.cf"))
GUARD = 20 * MAX_REFERENCES     # lookups after which the expansion clearly was not bounded


def bomb(x0: str, levels: int = 40) -> dict[str, str]:
    """x0 = X0, x1 = $x0$x0, ..., x40 = $x39$x39: 2**40 copies of x0 when expanded."""
    values = {"x0": x0}
    values.update({f"x{i}": f"$x{i - 1}$x{i - 1}" for i in range(1, levels + 1)})
    return values


def counting_lookup(values: dict[str, str]):
    calls = [0]

    def lookup(name: str, test_only: bool) -> str | None:
        calls[0] += 1
        if calls[0] > GUARD:
            raise AssertionError(f"expansion not bounded: more than {GUARD} lookups")
        return values.get(name)
    return lookup, calls


@pytest.mark.parametrize("x0, bound", [("a" * 1000, "characters"), ("", r"\$name references")],
                         ids=["growing", "empty-x0"])
def test_bomb_stops_at_a_bound(x0: str, bound: str) -> None:
    lookup, calls = counting_lookup(bomb(x0))
    budget = Budget()
    with pytest.raises(ExpansionLimit, match=rf"expanding \$x40 .*more than \d+ {bound}") as err:
        expand("banner $x40", lookup, budget)
    assert calls[0] <= MAX_REFERENCES + 1
    assert budget.length <= MAX_RESULT_LENGTH + len(x0)
    assert isinstance(err.value, ExpandError)


def test_bounds_are_per_value_and_configurable() -> None:
    values = bomb("ab", levels=10)       # 2**10 * 2 = 2048 characters, 2047 references
    assert expand("$x10", counting_lookup(values)[0]) == "ab" * 1024
    with pytest.raises(ExpansionLimit, match="more than 2000 characters"):
        expand("$x10", counting_lookup(values)[0], Budget(max_length=2000))
    with pytest.raises(ExpansionLimit, match=r"more than 100 \$name references"):
        expand("$x10", counting_lookup(values)[0], Budget(max_references=100))


def test_nesting_depth_is_postfix_s_100() -> None:
    values = {f"n{i}": f"$n{i + 1}" for i in range(150)}
    with pytest.raises(ExpandError, match="unreasonable macro call nesting") as err:
        expand("$n0", counting_lookup(values)[0])
    assert not isinstance(err.value, ExpansionLimit)


def test_main_cf_names_the_parameter_and_its_line() -> None:
    text = "".join(f"{k} = {v}\n" for k, v in bomb("a" * 1000).items())
    cf = parse_main_cf(text + "smtpd_banner = $myhostname $x40\n", "/etc/postfix/main.cf")
    with pytest.raises(ConfigError) as err:
        cf.get("smtpd_banner")
    line = err.value.one_line()
    assert line.startswith("/etc/postfix/main.cf:42: smtpd_banner: expanding $x40 gives more than "
                           f"{MAX_RESULT_LENGTH} characters")
    assert "macro processing error" not in line   # Postfix would not stop: it would try


def hardener(*args: str) -> subprocess.CompletedProcess[str]:
    # the guard timeout only stops a hung run before the fix; nothing asserts on time
    return subprocess.run([sys.executable, "-m", "hardener", *args], capture_output=True,
                          text=True, timeout=120)


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_lint_refuses_the_bomb(tmp_path: Path) -> None:
    text = "".join(f"{k} = {v}\n" for k, v in bomb("abcdefgh").items())
    (tmp_path / "main.cf").write_text(text + "smtpd_banner = $x40 ESMTP\n")
    line = one_error_line(hardener("lint", str(tmp_path)))
    assert line.startswith(f"hardener: error: {tmp_path}/main.cf:42: smtpd_banner: expanding $x40 ")
    assert "x1 = $x0$x0" in line


def test_lint_refuses_a_long_line_naming_it(tmp_path: Path) -> None:
    main_cf = tmp_path / "main.cf"
    main_cf.write_text("myhostname = mx.example.com\nmydestination = " + "a" * MAX_LINE_LENGTH + "\n")
    assert one_error_line(hardener("lint", str(main_cf))) == (
        f"hardener: error: {main_cf}:2: line longer than {MAX_LINE_LENGTH} characters: refused")


def test_a_long_logical_line_counts_its_continuation_lines() -> None:
    text = "myhostname = mx.example.com\nmynetworks = 127.0.0.0/8\n" + " 10.0.0.0/8\n" * 10_000
    with pytest.raises(ConfigError) as err:
        parse_main_cf(text, "main.cf")
    assert err.value.one_line() == (f"main.cf:2: line longer than {MAX_LINE_LENGTH} characters "
                                    "(with its continuation lines): refused")
    # long comments are skipped as Postfix skips them
    assert parse_main_cf("#" + "x" * (2 * MAX_LINE_LENGTH) + "\na = b\n").get("a") == "b"


def test_lint_refuses_a_huge_file(tmp_path: Path) -> None:
    main_cf = tmp_path / "main.cf"
    main_cf.write_text("# filler\n" * (MAX_FILE_SIZE // 9 + 1))
    assert one_error_line(hardener("lint", str(main_cf))) == (
        f"hardener: error: {main_cf}: larger than {MAX_FILE_SIZE} bytes: refused")


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_real_configs_stay_far_inside_the_bounds(path: Path) -> None:
    """Every parameter of every corpus file (defaults included) expands with a tenth of the budget."""
    cf = load_main_cf(path)
    from hardener.postfix import defaults

    names = set(cf.names()) | set(defaults.PROJECT_PARAMETERS)
    for name in sorted(names):
        raw = cf.raw_or_default(name)
        if raw is None or name in defaults.RAW_PARAMETERS:
            continue
        budget = Budget()
        expand(raw, lambda n, _test: cf.raw_or_default(n), budget)
        assert budget.length < MAX_RESULT_LENGTH // 10, name
        assert budget.references < MAX_REFERENCES // 10, name
    assert max(len(line) for line in path.read_text().splitlines()) < MAX_LINE_LENGTH // 10
