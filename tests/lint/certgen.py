"""Test certificates for the lint corpus: a CA and leaf certificates with one defect each."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

HOSTNAME = "mx.example.com"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert(subject_key, issuer_key, subject: str, issuer: str, names: list[str], *,
          not_before: datetime, not_after: datetime, ca: bool = False) -> x509.Certificate:
    builder = (x509.CertificateBuilder()
               .subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(subject_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(not_before).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def write_certificates(directory: Path) -> dict[str, Path]:
    """Write ca.pem and good/expired/selfsigned/wrongname/weakkey/wildcard/nochain .pem + .key
    (each .pem is the leaf followed by the CA, except nochain); return the .pem paths."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(timezone.utc)
    year = timedelta(days=365)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert(ca_key, ca_key, "Lint Test CA", "Lint Test CA", [], not_before=now - year,
               not_after=now + 5 * year, ca=True)
    (directory / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    weak_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    specs = {
        "good": (leaf_key, ca_key, "Lint Test CA", [HOSTNAME], now - year, now + year),
        "expired": (leaf_key, ca_key, "Lint Test CA", [HOSTNAME], now - 2 * year, now - year / 2),
        "selfsigned": (leaf_key, leaf_key, HOSTNAME, [HOSTNAME], now - year, now + year),
        "wrongname": (leaf_key, ca_key, "Lint Test CA", ["other.example.net"], now - year, now + year),
        "weakkey": (weak_key, ca_key, "Lint Test CA", [HOSTNAME], now - year, now + year),
        "wildcard": (leaf_key, ca_key, "Lint Test CA", ["*.example.com"], now - year, now + year),
    }
    paths = {}
    for name, (key, signer, issuer, names, start, end) in specs.items():
        subject = names[0] if names else name
        cert = _cert(key, signer, subject, issuer, names, not_before=start, not_after=end)
        pem = directory / f"{name}.pem"
        pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM)
                        + ca.public_bytes(serialization.Encoding.PEM))
        (directory / f"{name}.key").write_bytes(_key_pem(key))
        paths[name] = pem
    # the good leaf without its CA: peers cannot build the chain
    nochain = directory / "nochain.pem"
    nochain.write_bytes((directory / "good.pem").read_bytes().split(b"-----END CERTIFICATE-----")[0]
                        + b"-----END CERTIFICATE-----\n")
    (directory / "nochain.key").write_bytes((directory / "good.key").read_bytes())
    paths["nochain"] = nochain
    return paths
