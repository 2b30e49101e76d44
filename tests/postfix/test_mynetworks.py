"""mynetworks parsing: entries, locations, files and tables, and the problems lint reports.
(What a real smtpd does with each kind of element is checked in test_mynetworks_postfix.py.)"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from hardener.errors import ConfigError
from hardener.postfix import load_main_cf, mynetworks_problems, parse_main_cf, parse_mynetworks
from tests.postfix.postconf_tools import postconf_expanded


def test_entries_with_lines_and_negation() -> None:
    cf = parse_main_cf("trusted = 192.0.2.0/24\nmynetworks = 127.0.0.0/8, [::1]/128\n"
                       "    !10.0.0.5 10.0.0.0/8\n    $trusted [2001:db8::]/32\n", "main.cf")
    entries = parse_mynetworks(cf)
    assert [(str(e.network), e.location.line, e.negated) for e in entries] == [
        ("127.0.0.0/8", 2, False), ("::1/128", 2, False), ("10.0.0.5/32", 3, True),
        ("10.0.0.0/8", 3, False), ("192.0.2.0/24", 4, False), ("2001:db8::/32", 4, False)]
    assert entries[1].text == "[::1]/128"
    assert mynetworks_problems(cf) == []


@pytest.mark.parametrize("value,entry,rejected,words", [
    ("10.1.2.3/24", "10.1.2.3/24", True, "perhaps you mean 10.1.2.0/24"),
    ("[2001:db8::1]/32", "[2001:db8::1]/32", True, "perhaps you mean [2001:db8::]/32"),
    ("::1/128", "::1/128", True, "write [::1]/128"),
    ("[::ffff:]/104", "[::ffff:]/104", True, "bad net/mask"),
    ("10.0.0.0/33", "10.0.0.0/33", True, "prefix length"),
    ("[::ffff:127.0.0.0]/104", "[::ffff:127.0.0.0]/104", False, "write 127.0.0.0/8"),
    ("mail.example.com", "mail.example.com", False, "never host names"),
    ("10.0.0.0/8 # office", "#", False, "every element after it"),
    ("10.0.0.0/8,", ",", False, "trailing comma"),
    ("10.0.0.0/8,,192.0.2.0/24", ",", False, "doubled comma"),
    ("10.1.2", "10.1.2", False, "never matches"),
])
def test_problems(value: str, entry: str, rejected: bool, words: str) -> None:
    cf = parse_main_cf(f"# x\nmynetworks = {value}\n", "/etc/postfix/main.cf")
    problems = mynetworks_problems(cf)
    assert len(problems) == 1, problems
    problem = problems[0]
    assert (problem.entry, problem.rejected) == (entry, rejected)
    assert words in problem.reason
    assert problem.location.file == "/etc/postfix/main.cf" and problem.location.line == 2
    if rejected:
        with pytest.raises(ConfigError) as err:
            parse_mynetworks(cf)
        assert err.value.one_line().startswith("/etc/postfix/main.cf:2: mynetworks: ")
        assert entry in err.value.message
    else:
        parse_mynetworks(cf)


def test_ipv6_without_brackets_is_fatal() -> None:
    problem, = mynetworks_problems(parse_main_cf("mynetworks = 2001:db8::/32\n"))
    assert problem.rejected and problem.fatal


def test_file_and_cidr_table(tmp_path: Path) -> None:
    (tmp_path / "nets").write_text("# office\n10.0.0.0/8 192.0.2.0/24\n!172.16.0.1\n172.16.0.0/12\n")
    (tmp_path / "clients.cidr").write_text("198.51.100.0/24 OK\n2001:db8::/32 OK\n")
    (tmp_path / "hosts").write_text("203.0.113.7 OK\n203.0.113.0/24 OK\n")
    cf = parse_main_cf(f"mynetworks = {tmp_path}/nets cidr:{tmp_path}/clients.cidr "
                       f"hash:{tmp_path}/hosts\n")
    nets = [(str(e.network), e.negated, e.source) for e in parse_mynetworks(cf)]
    assert nets == [("10.0.0.0/8", False, f"{tmp_path}/nets"), ("192.0.2.0/24", False, f"{tmp_path}/nets"),
                    ("172.16.0.1/32", True, f"{tmp_path}/nets"), ("172.16.0.0/12", False, f"{tmp_path}/nets"),
                    ("198.51.100.0/24", False, f"cidr:{tmp_path}/clients.cidr"),
                    ("2001:db8::/32", False, f"cidr:{tmp_path}/clients.cidr"),
                    ("203.0.113.7/32", False, f"hash:{tmp_path}/hosts")]
    problem, = mynetworks_problems(cf)
    assert problem.entry == "203.0.113.0/24" and "exact addresses only" in problem.reason
    with pytest.raises(ConfigError, match="cannot read"):
        parse_mynetworks(parse_main_cf(f"mynetworks = {tmp_path}/missing\n"))


@pytest.mark.parametrize("style", ["host", "subnet", "class"])
def test_style_matches_postconf(style: str, tmp_path: Path) -> None:
    (tmp_path / "main.cf").write_text(f"mynetworks_style = {style}\ninet_protocols = all\n")
    for _ in range(3):  # other tests may add or remove loopback addresses meanwhile
        ours = " ".join(e.text for e in parse_mynetworks(load_main_cf(tmp_path)))
        if ours == postconf_expanded(tmp_path, ["mynetworks"])["mynetworks"]:
            break
    assert ours == postconf_expanded(tmp_path, ["mynetworks"])["mynetworks"]
    for entry in parse_mynetworks(load_main_cf(tmp_path)):
        assert entry.location is None


def test_loopback_only_interfaces() -> None:
    cf = parse_main_cf("inet_interfaces = loopback-only\nmynetworks_style = host\n")
    texts = [e.text for e in parse_mynetworks(cf)]
    assert "127.0.0.1/32" in texts and "[::1]/128" in texts   # tests may add more 127.x addresses
    loopback = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]
    assert all(any(e.network.subnet_of(n) for n in loopback if n.version == e.network.version)
               for e in parse_mynetworks(cf))


@pytest.mark.parametrize("value, cover", [
    ("127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128", "127.0.0.0/8"),   # Debian's default main.cf
    ("[::ffff:10.1.0.0]/112, 10.0.0.0/8", "10.0.0.0/8 already trusts them (10.1.0.0/16)"),
])
def test_mapped_network_next_to_its_ipv4_form_is_redundant(value: str, cover: str) -> None:
    problem, = mynetworks_problems(parse_main_cf(f"mynetworks = {value}\n"))
    assert problem.redundant and not problem.rejected
    assert problem.reason.startswith("redundant: never matches") and cover in problem.reason


@pytest.mark.parametrize("value", [
    "[::ffff:127.0.0.0]/104 [::1]/128",          # IPv4 loopback clients are not trusted at all
    "!10.0.0.0/8 [::ffff:10.0.0.0]/104",         # a negated entry trusts nothing
    "192.168.0.0/16 [::ffff:10.0.0.0]/104",
])
def test_mapped_network_without_its_ipv4_form_is_a_problem(value: str) -> None:
    problem, = mynetworks_problems(parse_main_cf(f"mynetworks = {value}\n"))
    assert not problem.redundant and "write " in problem.reason
