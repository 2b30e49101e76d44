"""master.cf `-o` overrides through the real daemon: a submission service on its own port with
mandatory TLS, AUTH and its own client restrictions, beside a port-25 service without them; and
the built-in outbound-relay profile, rendered and started unedited, relaying an authenticated
message to Postfix's smtp-sink."""

from __future__ import annotations

from tests.fixtures.mta import DEFAULT_MASTER_CF
from tests.fixtures.net import free_port, free_ports
from tests.mta.auth_helpers import PASSWORD, add_user, connect, plain, swaks, tls_settings
from tests.render.helpers import render_for

REMOTE = "someone@remote.example"
SUBMISSION = """\
{address}:{port} inet n - n - - smtpd
  -o syslog_name=hardener/submission
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_tls_auth_only=yes
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
  -o {{ smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination }}
"""


def _submission_mta(mta_factory, cert, loopback, sink):
    address = loopback.host()
    port, sub_port = free_ports(address, 2)
    master = DEFAULT_MASTER_CF + SUBMISSION.format(address=address, port=sub_port)
    mta = mta_factory({**tls_settings(cert), "relayhost": f"[{sink.address}]:{sink.port}"},
                      address=address, port=port, master_cf_text=master, start=False)
    done = add_user(mta.config_dir, "alice", PASSWORD)
    assert done.returncode == 0, done.stderr
    mta.start()
    return mta, sub_port


def test_submission_overrides_apply_to_that_service_only(mta_factory, cert_factory, loopback,
                                                          smtp_sink_factory):
    sink = smtp_sink_factory()
    mta, sub_port = _submission_mta(mta_factory, cert_factory.valid("mx.hardener.test"),
                                    loopback, sink)
    # port 25 service: main.cf only (no AUTH even inside TLS, MAIL without TLS)
    with connect(mta) as c:
        text = c.ehlo_tls()
        assert "AUTH" not in text
        assert c.cmd(f"AUTH PLAIN {plain('alice', PASSWORD)}")[0] == 503
    with connect(mta) as c:
        assert c.greeting()[0] == 220 and c.cmd("EHLO client.example")[0] == 250
        assert c.cmd("MAIL FROM:<x@client.example>")[0] == 250
    # submission: mandatory STARTTLS, AUTH inside TLS only
    sub = type(mta)(mta.root, mta.address, sub_port)
    with connect(sub) as c:
        assert c.greeting()[0] == 220
        code, text = c.cmd("EHLO client.example")
        assert "STARTTLS" in text and "AUTH" not in text
        assert c.cmd("MAIL FROM:<x@client.example>") == (
            530, "530 5.7.0 Must issue a STARTTLS command first")
        assert c.cmd(f"AUTH PLAIN {plain('alice', PASSWORD)}")[0] == 530
        assert c.cmd("NOOP")[0] == 250
    # unauthenticated, even from mynetworks (127.0.0.1): the service's client restrictions
    with connect(sub, "127.0.0.1") as c:
        c.ehlo_tls()
        assert c.cmd("MAIL FROM:<x@client.example>")[0] == 250
        code, text = c.cmd(f"RCPT TO:<{REMOTE}>")   # the client's name comes from /etc/hosts
        assert code == 554 and text.endswith("[127.0.0.1]>: Client host rejected: Access denied")
    done = swaks(mta.address, sub_port, "--local-interface", loopback.address(), "--tls",
                 "--auth", "LOGIN", "--auth-user", "alice", "--auth-password", PASSWORD,
                 "--from", "alice@client.example", "--to", REMOTE)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sink.wait_for_messages(1, timeout=60) == 1, mta.log_text()[-3000:]


def test_override_of_a_daemon_wide_parameter_is_refused(mta_factory, loopback):
    address = loopback.host()
    master = DEFAULT_MASTER_CF + f"{address}:{free_port(address)} inet n - n - - smtpd\n" \
        "  -o queue_directory=/tmp\n"
    mta = mta_factory(address=address, master_cf_text=master, start=False)
    try:
        mta.start(timeout=10)
    except AssertionError as exc:
        message = str(exc)
    else:
        raise AssertionError("started with -o queue_directory")
    line = DEFAULT_MASTER_CF.count("\n") + 1
    assert f"{mta.config_dir / 'master.cf'}:{line}: queue_directory: -o queue_directory " \
        "cannot differ per service" in message


def test_outbound_relay_profile_starts_unedited_and_relays_authenticated_mail(
        mta_factory, cert_factory, loopback, smtp_sink_factory):
    sink = smtp_sink_factory()
    cert = cert_factory.valid("relay.example.com")
    mta = mta_factory(start=False)
    render_for(mta, "outbound-relay", "mynetworks=127.0.0.1/32",
               f"smtpd_tls_cert_file={cert.chain}", f"smtpd_tls_key_file={cert.key}",
               f"relayhost=[{sink.address}]:{sink.port}", "smtp_tls_security_level=none")
    done = add_user(mta.config_dir, "alice", PASSWORD)
    assert done.returncode == 0, done.stderr
    mta.start()
    outside = loopback.address()
    refused = swaks(mta.address, mta.port, "--local-interface", outside, "--tls",
                    "--from", "x@client.example", "--to", REMOTE, "--quit-after", "RCPT")
    assert "554 5.7.1 <unknown[" in refused.stdout and "Client host rejected" in refused.stdout
    done = swaks(mta.address, mta.port, "--local-interface", outside, "--tls",
                 "--auth", "PLAIN", "--auth-user", "alice", "--auth-password", PASSWORD,
                 "--from", "alice@client.example", "--to", REMOTE)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sink.wait_for_messages(1, timeout=60) == 1, mta.log_text()[-3000:]
    assert "sasl_method=PLAIN, sasl_username=alice" in mta.log_text()
