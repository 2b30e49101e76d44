"""What the rendered files say: hardened values, control comments, deviations, atomic output."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hardener.errors import InputError
from hardener.render.environment import RenderError, make_environment
from hardener.render.output import write_tree
from tests.render.helpers import PROFILES, render

# parameter -> the control id that must be named in the comment block right above it
HARDENED = {
    "smtpd_banner": ("$myhostname ESMTP", "HRD-BANNER-001"),
    "disable_vrfy_command": ("yes", "HRD-ENUM-001"),
    "smtpd_relay_restrictions": ("permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination",
                                 "HRD-RELAY-002"),
    "smtpd_helo_required": ("yes", "HRD-PROTO-001"),
    "smtpd_data_restrictions": ("reject_unauth_pipelining", "HRD-PROTO-002"),
    "smtpd_forbid_bare_newline": ("yes", "HRD-SMUG-001"),
    "smtpd_tls_auth_only": ("yes", "HRD-AUTH-001"),
    "smtpd_tls_protocols": (">=TLSv1.2", "HRD-TLS-002"),
    "smtpd_tls_mandatory_protocols": (">=TLSv1.2", None),
    "message_size_limit": ("10240000", "HRD-PROTO-003"),
    "compatibility_level": ("3.6", "HRD-RELAY-002"),
    "mynetworks": (None, "HRD-NET-001"),
    "inet_interfaces": (None, "HRD-NET-003"),
    "alias_maps": (None, "HRD-ALIAS-001"),
}


def _params(main_cf: str) -> dict[str, tuple[str, list[str]]]:
    """name -> (value, the comment lines directly above it)."""
    out: dict[str, tuple[str, list[str]]] = {}
    comments: list[str] = []
    for line in main_cf.splitlines():
        if line.startswith("#"):
            comments.append(line)
            continue
        m = re.match(r"^([a-z_]+) = ?(.*)$", line)
        if m:
            out[m.group(1)] = (m.group(2), comments)
        comments = []
    return out


@pytest.mark.parametrize("profile", PROFILES)
def test_hardened_values_carry_their_control_id(profile: str) -> None:
    params = _params(render(profile)["main.cf"])
    for name, (value, control_id) in HARDENED.items():
        assert name in params, name
        if value is not None:
            assert params[name][0] == value, name
        if control_id is not None:
            assert any(c.startswith(f"# {control_id} ") for c in params[name][1]), (name, params[name][1])
    assert "$mail_version" not in params["smtpd_banner"][0]


def test_null_client_values() -> None:
    params = _params(render("null-client")["main.cf"])
    assert params["inet_interfaces"][0] == "loopback-only"
    assert params["mydestination"][0] == ""
    assert params["relayhost"][0] == "[smtp.example.com]:587"
    assert params["local_transport"][0].startswith("error:")
    assert params["smtp_tls_security_level"][0] == "encrypt"
    assert params["smtpd_client_restrictions"][0] == "permit_mynetworks, reject"


def test_mx_gateway_values_transport_and_deviation_notes() -> None:
    files = render("mx-gateway", "config_directory=/etc/hardener")
    params = _params(files["main.cf"])
    assert params["relay_domains"][0] == "example.com, example.org"
    assert params["transport_maps"][0] == "texthash:/etc/hardener/transport"
    assert params["local_recipient_maps"][0] == ""
    assert params["mydestination"][0] == ""
    assert params["alias_maps"][0] == "hash:/etc/hardener/aliases"
    assert any("DEVIATION (smtpd_client_restrictions)" in c and "STIG" in c
               for c in params["smtpd_client_restrictions"][1])
    entries = [line.split() for line in files["transport"].splitlines() if not line.startswith("#")]
    assert entries == [["example.com", "smtp:[10.1.2.3]:25"], ["example.org", "smtp:[10.1.2.3]:25"]]
    assert "--config /etc/hardener" in files["systemd/hardener-mta.service"]


def test_outbound_relay_sasl_and_networks() -> None:
    params = _params(render("outbound-relay")["main.cf"])
    assert params["mynetworks"][0] == "127.0.0.0/8 [::1]/128 10.1.0.0/16"
    assert params["smtpd_sasl_auth_enable"][0] == "yes"
    assert "noanonymous" in params["smtpd_sasl_security_options"][0]
    assert params["relayhost"][0] == ""


@pytest.mark.parametrize("profile", PROFILES)
def test_master_cf_chroots_network_services_and_listens_where_told(profile: str) -> None:
    master = render(profile, "smtpd_listen=127.0.0.2:2525")["master.cf"]
    services = {}
    for line in master.splitlines():
        fields = line.split()
        if fields and not line.startswith("#") and not line[0].isspace():
            services[(fields[0], fields[1])] = fields
    assert services[("127.0.0.2:2525", "inet")][4] == "y"
    assert services[("127.0.0.2:2525", "inet")][7] == "smtpd"
    for name in ("smtp", "cleanup", "qmgr", "bounce", "defer", "trace", "rewrite", "pickup", "tlsmgr",
                 "relay", "anvil", "scache", "showq", "flush", "verify", "error"):
        assert services[(name, "unix")][4] == "y", name
    for name in ("local", "virtual", "proxymap"):
        assert services[(name, "unix")][4] == "n", name


def test_aliases_redirect_root() -> None:
    aliases = render("null-client", "admin_address=ops@example.com")["aliases"]
    entries = dict(line.split(": ", 1) for line in aliases.splitlines() if line and not line.startswith("#"))
    assert entries["root"] == "ops@example.com"
    assert entries["postmaster"] == "root"
    assert entries["abuse"] == "root" and entries["hostmaster"] == "root"
    default = render("null-client")["aliases"]
    assert "root: postmaster@example.com" in default


def test_same_input_same_bytes() -> None:
    for profile in PROFILES:
        assert render(profile) == render(profile)


def test_queue_and_data_directory_only_when_set() -> None:
    assert "queue_directory" not in render("null-client")["main.cf"]
    files = render("null-client", "queue_directory=/srv/q", "data_directory=/srv/d")
    params = _params(files["main.cf"])
    assert params["queue_directory"][0] == "/srv/q" and params["data_directory"][0] == "/srv/d"
    assert "ReadWritePaths=/srv/q /srv/d" in files["systemd/hardener-mta.service"]


def test_finalize_refuses_a_line_break_reaching_a_template() -> None:
    template = make_environment().from_string("myhostname = {{ value }}\n")
    with pytest.raises(RenderError):
        template.render(value="a.example.com\nmynetworks = 0.0.0.0/0")


def test_undefined_variable_is_an_error() -> None:
    from jinja2 import UndefinedError

    with pytest.raises(UndefinedError):
        make_environment().from_string("x = {{ v.nope }}\n").render(v={})


def test_write_tree_keeps_unrelated_files_and_replaces_rendered_ones(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_tree(out, {"main.cf": b"one\n", "systemd/unit": b"u\n"})
    (out / "cert.pem").write_text("mine")
    write_tree(out, {"main.cf": b"two\n", "systemd/unit": b"u\n"})
    assert (out / "main.cf").read_bytes() == b"two\n"
    assert (out / "cert.pem").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_write_tree_refuses_a_file_as_out(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("x")
    with pytest.raises(InputError):
        write_tree(tmp_path / "out", {"main.cf": b"x\n"})


def test_write_failure_leaves_out_untouched(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_tree(out, {"main.cf": b"old\n"})
    # a directory where a file must go makes the staging write fail before anything is moved
    with pytest.raises(InputError):
        write_tree(out, {"main.cf": b"new\n", "main.cf/oops": b"x\n"})
    assert (out / "main.cf").read_bytes() == b"old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze not installed (Debian package systemd)")
@pytest.mark.parametrize("profile", PROFILES)
def test_systemd_unit_verifies(profile: str, tmp_path: Path) -> None:
    files = render(profile, f"hardener_executable={sys.executable}", "maillog_file=/var/log/hardener.log",
                   "config_directory=/etc/hardener", "queue_directory=/var/spool/hardener")
    unit = tmp_path / "hardener-mta.service"
    unit.write_text(files["systemd/hardener-mta.service"])
    proc = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and proc.stderr.strip() == "", proc.stderr
    text = files["systemd/hardener-mta.service"]
    for line in ("NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes",
                 "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
                 "SystemCallFilter=@system-service chroot"):
        assert line in text
    caps = re.search(r"^CapabilityBoundingSet=(.*)$", text, re.M).group(1).split()
    assert {"CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_SETGID", "CAP_SYS_CHROOT"} <= set(caps)
    assert "CAP_SYS_ADMIN" not in caps


def test_maillog_file_and_prefixes() -> None:
    assert "maillog_file" not in render("null-client")["main.cf"]
    params = _params(render("null-client", "maillog_file=/var/tmp/demo/maillog")["main.cf"])
    assert params["maillog_file"][0] == "/var/tmp/demo/maillog" and "maillog_file_prefixes" not in params
    params = _params(render("null-client", "maillog_file=/srv/log/maillog")["main.cf"])
    assert params["maillog_file_prefixes"][0] == "/var, /dev/stdout, /srv/log"
    unit = render("null-client", "maillog_file=/srv/log/maillog", "queue_directory=/srv/q")[
        "systemd/hardener-mta.service"]
    assert "\nReadWritePaths=/srv/q /var/lib/postfix /srv/log\n" in unit
