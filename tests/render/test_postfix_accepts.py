"""Real Postfix accepts every built-in profile as rendered, and a running instance behaves hardened.

postconf -n and postfix check run on the files exactly as rendered (chroot and all); the running
instance goes through tests/fixtures/postfix.py, which only moves it onto a loopback address and
port, gives it its own queue and log, and turns chroot off (a temp queue has no /etc inside).
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures import procs
from tests.fixtures.postfix import BASE_DIR, _alternate_dirs, prepare_config_dir
from tests.render.helpers import PROFILES, render


@pytest.fixture
def checked_dir() -> Iterator[Path]:
    """A config directory listed in alternate_config_directories (removed afterwards)."""
    BASE_DIR.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="render-", dir=BASE_DIR))
    path.chmod(0o755)
    _alternate_dirs(lambda dirs: dirs + [str(path)])
    yield path
    _alternate_dirs(lambda dirs: [d for d in dirs if d != str(path)])
    shutil.rmtree(path, ignore_errors=True)


def _about_rendered(stderr: str) -> list[str]:
    """Warnings except those about the default /etc/postfix/main.cf, which other tests edit
    concurrently (alternate_config_directories) and which is not what is checked here."""
    return [line for line in stderr.splitlines() if "/etc/postfix/main.cf" not in line]


@pytest.mark.parametrize("profile", PROFILES)
def test_postconf_and_postfix_check_accept_rendered_files(profile: str, checked_dir: Path) -> None:
    files = render(profile, f"config_directory={checked_dir}", f"queue_directory={checked_dir}/queue",
                   f"data_directory={checked_dir}/data", out=checked_dir)
    prepare_config_dir(checked_dir, files["main.cf"], files["master.cf"])
    (checked_dir / "queue").mkdir()
    (checked_dir / "data").mkdir()
    shutil.chown(checked_dir / "data", "postfix", "postfix")

    postconf = subprocess.run(["postconf", "-c", str(checked_dir), "-n"], capture_output=True, text=True)
    assert postconf.returncode == 0 and _about_rendered(postconf.stderr) == [], postconf.stderr
    assert "smtpd_banner = $myhostname ESMTP" in postconf.stdout
    master = subprocess.run(["postconf", "-c", str(checked_dir), "-M"], capture_output=True, text=True)
    assert master.returncode == 0 and _about_rendered(master.stderr) == [], master.stderr
    assert re.search(r"^smtp\s+inet\s+n\s+-\s+y\s", master.stdout, re.M), master.stdout
    check = subprocess.run(["postfix", "-c", str(checked_dir), "check"], capture_output=True, text=True)
    assert check.returncode == 0 and _about_rendered(check.stderr) == [], check.stderr
    # negative control: the same check does see a problem in the rendered file
    with open(checked_dir / "main.cf", "a") as fh:
        fh.write("hardener_bogus_parameter = 1\n")
    noisy = subprocess.run(["postconf", "-c", str(checked_dir), "-n"], capture_output=True, text=True)
    assert any("unused parameter: hardener_bogus_parameter" in w for w in _about_rendered(noisy.stderr))
    if profile == "mx-gateway":
        table = f"texthash:{checked_dir}/transport"
        assert subprocess.run(["postmap", "-q", "example.org", table], capture_output=True, text=True,
                              check=True).stdout.strip() == "smtp:[10.1.2.3]:25"


def _postalias(config_dir: Path) -> None:
    """What an admin runs after installing the rendered aliases file (main.cf says so)."""
    subprocess.run(["postalias", str(config_dir / "aliases")], check=True, capture_output=True)
    assert (config_dir / "aliases.db").is_file()


def _assert_clean_log(log: str) -> None:
    bad = re.findall(r"^.*postfix/\S+\[\d+\]: (?:fatal|panic|error|warning): .*$", log, re.M)
    # the fixture's temp queue is not owned by root; postfix-script says so, which is expected
    bad = [line for line in bad if "postfix-script" not in line]
    assert not bad, "\n".join(bad)


def _swaks(server: str, port: int, source: str, rcpt: str) -> str:
    proc = subprocess.run(
        ["swaks", "--server", server, "--port", str(port), "--local-interface", source,
         "--ehlo", "client.example.net", "--from", "sender@example.net", "--to", rcpt,
         "--quit-after", "RCPT", "--timeout", "15"],
        capture_output=True, text=True, timeout=60)
    return proc.stdout + proc.stderr


def _greeting(address: str, port: int) -> str:
    with socket.create_connection((address, port), timeout=10) as sock:
        data = b""
        while not data.endswith(b"\r\n"):
            chunk = sock.recv(512)
            if not chunk:
                break
            data += chunk
        sock.sendall(b"QUIT\r\n")
    return data.decode().strip()


# (profile, recipient an untrusted client must NOT get through, recipient it MAY get through or None)
_CASES = {
    "null-client": ("victim@example.net", None),
    "mx-gateway": ("victim@example.net", "someone@example.com"),
    "outbound-relay": ("victim@example.net", None),
}


@pytest.mark.parametrize("profile", PROFILES)
def test_running_postfix_refuses_relay_and_hides_version(profile: str, postfix_factory, loopback,
                                                        cert_factory, tmp_path: Path) -> None:
    cert = cert_factory.valid("mx.hardener.test")
    tables = tmp_path / "etc"  # the rendered transport table and aliases live here
    tmp_path.chmod(0o755)
    # Only 127.0.0.1 is trusted: every 127.0.X.Y source is an untrusted client on the internet.
    extra = [f"config_directory={tables}", "mynetworks=127.0.0.1/32", f"smtpd_tls_cert_file={cert.chain}",
             f"smtpd_tls_key_file={cert.key}"]
    if profile == "outbound-relay":
        # No SASL server (dovecot) on this machine: smtpd would log a fatal error per session.
        extra.append("smtpd_sasl_auth_enable=no")
    files = render(profile, *extra, out=tables)
    _postalias(tables)
    instance = postfix_factory(main_cf_text=files["main.cf"], master_cf_text=files["master.cf"])

    greeting = _greeting(instance.address, instance.port)
    hostname = instance.postconf("myhostname")
    assert greeting == f"220 {hostname} ESMTP"
    assert not re.search(r"postfix|debian|\d+\.\d+\.\d+", greeting, re.I)

    denied_rcpt, accepted_rcpt = _CASES[profile]
    untrusted = loopback.address()
    session = _swaks(instance.address, instance.port, untrusted, denied_rcpt)
    assert re.search(r"<\*\*\s+554 5\.7\.1 .*(Relay access denied|Client host rejected)", session), session
    if profile == "mx-gateway":
        assert "Relay access denied" in session
    assert "Postfix" not in session and "3.7" not in session.replace(hostname, "")
    if accepted_rcpt:
        ok = _swaks(instance.address, instance.port, untrusted, accepted_rcpt)
        assert re.search(r"<-\s+250 2\.1\.5 Ok", ok), ok
    trusted = _swaks(instance.address, instance.port, "127.0.0.1", denied_rcpt)
    assert re.search(r"<-\s+250 2\.1\.5 Ok", trusted), trusted
    _assert_clean_log(instance.maillog_text())


def test_rendered_master_cf_runs_chrooted(postfix_factory, loopback, tmp_path: Path) -> None:
    """The rendered master.cf as is (chroot column y for smtpd, qmgr, cleanup, ...) runs for real.

    The shared fixture turns chroot off for its instances; here the rendered master.cf replaces its
    rewrite before start, with the listen address given through the profile key smtpd_listen.
    """
    address = loopback.host()
    from tests.fixtures.net import free_port

    port = free_port(address)
    tables = tmp_path / "etc"
    tmp_path.chmod(0o755)
    files = render("null-client", f"config_directory={tables}", "mynetworks=127.0.0.1/32",
                   f"smtpd_listen={address}:{port}", "smtpd_tls_security_level=none",
                   out=tables)
    _postalias(tables)
    instance = postfix_factory(main_cf_text=files["main.cf"], master_cf_text=files["master.cf"],
                               address=address, port=port, start=False)
    (instance.config_dir / "master.cf").write_text(files["master.cf"])
    instance.start()
    ps = subprocess.run(["postconf", "-c", str(instance.config_dir), "-M", f"{address}:{port}/inet"],
                        capture_output=True, text=True, check=True).stdout.split()
    assert ps[4] == "y"
    session = _swaks(address, port, loopback.address(), "victim@example.net")
    assert re.search(r"<\*\*\s+554 5\.7\.1 ", session), session
    assert _greeting(address, port) == "220 app1.example.com ESMTP"
    trusted = _swaks(address, port, "127.0.0.1", "victim@example.net")
    assert re.search(r"<-\s+250 2\.1\.5 Ok", trusted), trusted
    _assert_clean_log(instance.maillog_text())
    # the smtpd that served the sessions is still idle-waiting: its root is the queue directory
    roots = []
    for pid in procs.all_pids():
        try:
            argv = procs.cmdline(pid)
            if argv[0].endswith(b"smtpd") and f"{address}:{port}".encode() in argv:
                roots.append(procs.root(pid))
        except OSError:
            continue
    assert roots and all(r == str(instance.queue_dir) for r in roots), roots
