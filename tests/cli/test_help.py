"""--help as a mail admin reads it, and the command-line conventions of hardener/cli/common.py checked
on every command: flags show no value placeholder (no `<bool>`), `--config DIR` is the same option
everywhere, `--output` is always a FILE and `--out` always a DIR, every option says what its value
is, and every command module is registered the same way."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import hardener.cli
from hardener.cli import app

RUNNER = CliRunner()
CLICK_APP = typer.main.get_command(app)


def _walk(command, path: tuple[str, ...] = ()):
    """Every command and group of the app with its path of names (typer vendors click: duck-typed)."""
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _walk(sub, (*path, name))


ALL = dict(_walk(CLICK_APP))
LEAVES = {path: cmd for path, cmd in ALL.items() if not hasattr(cmd, "commands")}


def _help(*path: str) -> str:
    result = RUNNER.invoke(app, [*path, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    return result.output


def _flat(text: str) -> str:
    return " ".join(text.split())


def _options(command, name: str):
    return [p for p in command.params if name in getattr(p, "opts", ())]


def _with_option(name: str) -> dict[tuple[str, ...], object]:
    return {path: p for path, cmd in LEAVES.items() for p in _options(cmd, name)}


FAIL_ON_COMMANDS = sorted(_with_option("--fail-on"))


def test_lint_and_audit_have_fail_on() -> None:
    assert {("lint",), ("audit",)} <= set(FAIL_ON_COMMANDS)


@pytest.mark.parametrize("path", FAIL_ON_COMMANDS, ids=" ".join)
def test_fail_on_default_is_shown_by_name(path: tuple[str, ...]) -> None:
    text = _flat(_help(*path))
    assert "[default: high]" in text
    assert "[default: 3]" not in text


@pytest.mark.parametrize("path", sorted(ALL), ids=lambda p: " ".join(p) or "hardener")
def test_help_has_no_bool_placeholder(path: tuple[str, ...]) -> None:
    """typer's rich help prints `<bool>` beside every flag (even --help); hardener's help is plain."""
    text = _help(*path)
    assert "<bool>" not in text
    assert "╭" not in text            # no rich boxes: the plain help every command shares
    for param in (p for p in ALL[path].params if getattr(p, "is_flag", False)):
        line = next(line for line in text.splitlines() if line.strip().startswith(param.opts[0]))
        assert line.split()[1:2] != ["BOOLEAN"], line


@pytest.mark.parametrize("path", sorted(LEAVES), ids=" ".join)
def test_every_option_says_what_it_is(path: tuple[str, ...]) -> None:
    for param in LEAVES[path].params:
        if param.param_type_name != "option":
            continue
        where = f"{' '.join(path)} {param.opts[0]}"
        assert getattr(param, "help", None), f"{where} has no help text"
        if not param.is_flag:
            assert param.metavar, f"{where} does not name its value (metavar)"


def test_config_is_one_option_everywhere() -> None:
    """--config DIR: the same help, default and environment variable in every command that has it,
    and every mta and mta queue command has it."""
    found = _with_option("--config")
    assert set(found) == {p for p in LEAVES if p[:1] == ("mta",)}
    shapes = {(p.metavar, p.help, str(p.default), p.envvar, p.required) for p in found.values()}
    assert shapes == {("DIR", "Directory holding main.cf and master.cf.", "/etc/hardener",
                       "HARDENER_CONFIG", False)}
    texts = {_flat(_help(*path)).split("--config DIR ", 1)[1].split(" --", 1)[0] for path in found}
    assert texts == {"Directory holding main.cf and master.cf. [env var: HARDENER_CONFIG; "
                     "default: /etc/hardener]"}


def test_output_is_a_file_and_out_is_a_directory() -> None:
    outputs, outs = _with_option("--output"), _with_option("--out")
    assert {("lint",), ("audit",)} <= set(outputs) and set(outs) == {("render",)}
    assert {p.metavar for p in outputs.values()} == {"FILE"}
    assert {p.metavar for p in outs.values()} == {"DIR"}
    for name in ("--output-dir", "--outdir", "--out-dir", "--output-file", "-o"):
        assert not _with_option(name), name


def test_format_is_one_option() -> None:
    found = _with_option("--format")
    assert {("lint",), ("audit",), ("mta", "queue", "list")} <= set(found)
    assert {p.metavar for p in found.values()} == {"FORMAT"}
    assert {str(p.default) for p in found.values()} == {"table"}


def test_every_command_module_registers_the_same_way() -> None:
    """One module per command group holding `app`, joined in hardener/cli/__init__.py with
    add_typer; no register() functions, no module-level Typer under another name."""
    names = [m.name for m in pkgutil.iter_modules(hardener.cli.__path__) if m.name.endswith("_cmd")]
    assert len(names) >= 7
    for name in names:
        module = importlib.import_module(f"hardener.cli.{name}")
        assert isinstance(getattr(module, "app", None), typer.Typer), name
        assert not hasattr(module, "register"), name
        assert [k for k, v in vars(module).items() if isinstance(v, typer.Typer)] == ["app"], name
    root = Path(hardener.cli.__file__)
    assert "importlib" not in root.read_text()
    texts = "".join(p.read_text() for p in root.parent.glob("*.py"))
    for name in names:
        assert texts.count(f"add_typer({name}.app") == 1, name


@pytest.mark.parametrize("path", [("lint",), ("audit",)], ids=" ".join)
def test_every_option_has_help_and_exit_statuses_are_listed(path: tuple[str, ...]) -> None:
    for param in LEAVES[path].params:
        assert getattr(param, "help", None), f"{param.opts} has no help text"
    text = _flat(_help(*path))
    assert "Exit status: 0 nothing at or above --fail-on; 1 findings at or above it; 2 bad input" in text


def test_audit_help_says_what_is_safe_and_how_targets_look() -> None:
    text = _flat(_help("audit"))
    assert "no mail is sent unless --intrusive" in text
    assert "host, host:port or [v6addr]:port" in text
    assert "Usage: root audit [OPTIONS] [TARGET]..." in text or \
        "Usage: hardener audit [OPTIONS] [TARGET]..." in text


def test_sendmail_help_lists_its_own_flags_and_exit_codes() -> None:
    text = _flat(_help("sendmail"))
    for flag in ("-f SENDER", "-F NAME", "-t ", "-i or -oi", "-C DIR", "$MAIL_CONFIG",
                 "$HARDENER_CONFIG", "78 configuration error"):
        assert flag in text, flag


def _hardener(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    environ = {k: v for k, v in os.environ.items() if k not in ("HARDENER_CONFIG", "MAIL_CONFIG")}
    return subprocess.run([sys.executable, "-m", "hardener", *args], capture_output=True,
                          text=True, timeout=60, env={**environ, **(env or {})})


def test_config_defaults_to_hardener_config_then_etc_hardener(tmp_path: Path) -> None:
    """The environment variable is read, --config wins over it, and without either the default
    directory is used (each run fails on a missing main.cf, naming the directory it looked in)."""
    from_env = tmp_path / "from-env"
    from_flag = tmp_path / "from-flag"
    proc = _hardener("mta", "queue", "list", env={"HARDENER_CONFIG": str(from_env)})
    assert proc.returncode == 2 and f"{from_env}/main.cf" in proc.stderr, proc.stderr
    proc = _hardener("mta", "status", "--config", str(from_flag),
                     env={"HARDENER_CONFIG": str(from_env)})
    assert proc.returncode == 2 and f"{from_flag}/main.cf" in proc.stderr, proc.stderr
    if not Path("/etc/hardener/main.cf").exists():
        proc = _hardener("mta", "queue", "flush")
        assert proc.returncode == 2 and "/etc/hardener/main.cf" in proc.stderr, proc.stderr
    assert len(proc.stderr.splitlines()) == 1
