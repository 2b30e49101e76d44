"""master.cf parsing: unit tests and the comparison with `postconf -F` / `postconf -P`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hardener.errors import ConfigError
from hardener.postfix import load_master_cf, parse_main_cf, parse_master_cf
from tests.postfix.postconf_tools import normalized, postconf, postconf_all_expanded

CORPUS = sorted((Path(__file__).parent / "corpus_master").glob("*.cf"))


def _postconf_command(service) -> str:
    """How postconf -F prints the command field: -o as name=value, {} around words with spaces."""
    words = [service.command]
    args = iter(service.args)
    for arg in args:
        if arg == "-o":
            words.append("-o")
            nxt = next(args, "")
            name, _, value = nxt.partition("=")
            arg = f"{name.strip()}={value.strip()}"
        words.append(f"{{{arg}}}" if any(c.isspace() for c in arg) else arg)
    return normalized(" ".join(words))


@pytest.mark.parametrize("master_file", CORPUS, ids=[p.stem for p in CORPUS])
def test_fields_match_postconf_F(master_file: Path, tmp_path: Path) -> None:
    shutil.copy(master_file, tmp_path / "master.cf")
    (tmp_path / "main.cf").write_text("compatibility_level = 3.6\n")
    master = load_master_cf(tmp_path)
    theirs: dict[str, str] = {}
    for line in postconf(tmp_path, "-F").splitlines():
        key, _, value = line.partition(" = ")
        theirs[key] = value
    ours: dict[str, str] = {}
    for s in master.services:
        prefix = f"{s.name}/{s.type}/"
        _, private, unpriv, chroot, wakeup, maxproc, _ = s.columns
        ours.update({prefix + "service": s.name, prefix + "type": s.type,
                     prefix + "private": private, prefix + "unprivileged": unpriv,
                     prefix + "chroot": chroot, prefix + "wakeup": wakeup,
                     prefix + "process_limit": maxproc, prefix + "command": _postconf_command(s)})
    assert ours == theirs


@pytest.mark.parametrize("master_file", CORPUS, ids=[p.stem for p in CORPUS])
def test_options_match_postconf_P(master_file: Path, tmp_path: Path) -> None:
    shutil.copy(master_file, tmp_path / "master.cf")
    (tmp_path / "main.cf").write_text("compatibility_level = 3.6\n")
    master = load_master_cf(tmp_path)
    theirs = {}
    for line in postconf(tmp_path, "-P").splitlines():
        key, _, value = line.partition(" = ")
        theirs[key] = value
    ours = {f"{s.name}/{s.type}/{k}": normalized(v) for s in master.services for k, v in s.options.items()}
    assert ours == theirs


def test_defaults_and_listen_addresses() -> None:
    text = (Path(__file__).parent / "corpus_master" / "tricky.master.cf").read_text()
    main = parse_main_cf("default_process_limit = 7\n")
    master = parse_master_cf(text, "master.cf", main_cf=main)
    test = master.find("127.0.0.1:2525")
    assert (test.private, test.unpriv, test.chroot, test.maxproc, test.wakeup) == (False, True, False, 7, 0)
    assert (test.listen_host, test.listen_port) == ("127.0.0.1", 2525)
    assert test.options == {"syslog_name": "postfix/test",
                            "smtpd_client_restrictions": "permit_mynetworks, reject",
                            "smtpd_tls_security_level": "encrypt"}
    assert test.args[-1] == "-v" and test.line == 2
    v6 = master.find("[::1]:25", "inet")
    assert (v6.listen_host, v6.listen_port, v6.maxproc, v6.chroot) == ("::1", 25, 5, False)
    assert master.find("submission").listen_port == 587
    assert master.find("smtps").listen_port == 465
    assert master.find("submission").listen_host is None
    qmgr = master.find("qmgr", "unix")
    assert (qmgr.wakeup, qmgr.wakeup_conditional, qmgr.maxproc) == (300, True, 1)
    pipe = master.find("mytransport")
    assert pipe.args == ["flags=F", "user=nobody", "argv=/bin/echo", "${recipient}", "a b"]
    assert pipe.private is True and pipe.unpriv is False
    assert master.find("postlog").type == "unix-dgram"
    assert master.find("postscreen_pass", "pass").chroot is True
    assert master.find("nonexistent") is None
    assert [s.name for s in master.find_all(command="smtpd", type="inet")] == [
        "127.0.0.1:2525", "[::1]:25", "submission", "smtps"]


def test_service_option_expands_against_main_cf() -> None:
    main = parse_main_cf("myhostname = mx.example.com\n")
    master = parse_master_cf("sub inet n - y - - smtpd -o {smtpd_banner = $myhostname ready}\n")
    assert master.find("sub").option("smtpd_banner", main) == "mx.example.com ready"
    assert master.find("sub").option("relayhost", main) is None


@pytest.mark.parametrize("text,message", [
    ("smtp inet n - n - -\n", "bad field count"),
    ("smtp tcp n - n - - smtpd\n", 'invalid type field "tcp"'),
    ("smtp inet y - n - - smtpd\n", "inet service cannot be private"),
    ("smtp inet x - n - - smtpd\n", 'invalid private field "x"'),
    ("smtp inet n - n abc - smtpd\n", 'invalid wakeup field "abc"'),
    ("smtp inet n - n - 1x smtpd\n", 'invalid process_limit field "1x"'),
    ("smtp inet n - n - - smtpd -o\n", "-o without name=value"),
    ("smtp inet n - n - - smtpd -o foo\n", "missing '=' after attribute name"),
    ("smtp inet n - n - - smtpd -o {a=b\n", "missing '}'"),
    ("  smtp inet n - n - - smtpd\n", "logical line must not start with whitespace"),
    ("[::1:25 inet n - n - - smtpd\n", "bad service name syntax"),
    ("::1:25 inet n - n - - smtpd\n", "bad service name syntax"),
])
def test_errors_name_file_and_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_master_cf("# first line\n" + text, "/etc/x/master.cf")
    assert message in err.value.message
    assert err.value.one_line().startswith("/etc/x/master.cf:2: ")


def test_listen_addresses() -> None:
    master = parse_master_cf("127.0.0.1:2525 inet n - n - - smtpd\nsmtp inet n - n - - smtpd\n"
                             "pickup unix n - y 60 1 pickup\n")
    everywhere = parse_main_cf("inet_interfaces = all\ninet_protocols = all\n")
    assert master.find("smtp").listen_addresses(everywhere) == ["0.0.0.0", "::"]
    assert master.find("127.0.0.1:2525").listen_addresses(everywhere) == ["127.0.0.1"]
    assert master.find("pickup").listen_addresses(everywhere) == []
    local = parse_main_cf("inet_interfaces = loopback-only\ninet_protocols = ipv4\n")
    assert "127.0.0.1" in master.find("smtp").listen_addresses(local)
    bad = parse_main_cf("inet_interfaces = 192.0.2.254\ninet_protocols = ipv4\n")
    with pytest.raises(ConfigError, match="no local interface found"):
        master.find("smtp").listen_addresses(bad)


SUBMISSION_MAIN = """\
myhostname = mx.example.com
mua_client_restrictions = permit_sasl_authenticated, reject
smtpd_banner = $myhostname ESMTP
"""
SUBMISSION_MASTER = """\
smtp       inet n - y - - smtpd
submission inet n - y - - smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=encrypt
  -o smtpd_client_restrictions=$mua_client_restrictions
  -o { smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination }
  -o myhostname=submit.example.com
"""


def test_service_overrides_match_postconf_o(tmp_path: Path) -> None:
    """A service's -o overrides, as the service sees main.cf (the value replaces main.cf's, and
    `$name` in main.cf and in the overrides expands against the overridden set): the same values
    as the real `postconf -o NAME=VALUE ... -x`, which applies overrides the way master's -o does."""
    (tmp_path / "main.cf").write_text(SUBMISSION_MAIN)
    (tmp_path / "master.cf").write_text(SUBMISSION_MASTER)
    main = parse_main_cf(SUBMISSION_MAIN)
    submission = load_master_cf(tmp_path, main).find("submission")
    view = main.with_overrides(submission.options)
    args = [a for k, v in submission.options.items() for a in ("-o", f"{k}={v}")]
    names = ["smtpd_tls_security_level", "smtpd_client_restrictions", "smtpd_relay_restrictions",
             "myhostname", "smtpd_banner", "syslog_name", "mydestination"]
    theirs = postconf_all_expanded(tmp_path, *args)
    assert {n: normalized(view.get(n)) for n in names} == {n: theirs[n] for n in names}
    assert view.get("smtpd_banner") == "submit.example.com ESMTP"
    # the other service, and main.cf itself, are untouched
    assert main.get("smtpd_banner") == "mx.example.com ESMTP"
    assert load_master_cf(tmp_path, main).find("smtp").options == {}
