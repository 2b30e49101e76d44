import subprocess
from pathlib import Path
from tests.render.helpers import render
from tests.render.test_postfix_accepts import _swaks

def test_sasl(postfix_factory, loopback, cert_factory, tmp_path):
    cert = cert_factory.valid("mx.hardener.test")
    tables = tmp_path / "etc"; tmp_path.chmod(0o755)
    files = render("outbound-relay", f"config_directory={tables}", "mynetworks=127.0.0.1/32", f"smtpd_tls_cert_file={cert.chain}", f"smtpd_tls_key_file={cert.key}", out=tables)
    inst = postfix_factory(main_cf_text=files["main.cf"], master_cf_text=files["master.cf"])
    p = subprocess.run(["swaks","--server",inst.address,"--port",str(inst.port),"--tls","--quit-after","EHLO","--to","a@example.com","--local-interface",loopback.address()],capture_output=True,text=True, stdin=subprocess.DEVNULL)
    print(p.stdout[-2500:], p.stderr)
    print(inst.maillog_text()[-1500:])
    assert 0
