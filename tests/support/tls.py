"""Throw-away PKI for TLS tests: a CA, a server certificate for 127.0.0.1, client certificates.

Keys are generated per test session in a temporary directory; none is committed.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class PKI:
    ca: Pair
    server: Pair
    client: Pair            # signed by `ca`, SAN URI spiffe://test/prometheus
    other_client: Pair      # signed by `ca`, SAN DNS other.example
    rogue_client: Pair      # self-signed: valid-looking but from no trusted CA


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write(directory: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Pair:
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return Pair(cert_path, key_path)


def _builder(subject: str, issuer: x509.Name | None, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    return (x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer or name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=2)))


def _leaf(directory: Path, name: str, ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey,
          sans: list[x509.GeneralName], usage: x509.ObjectIdentifier) -> Pair:
    key = _key()
    cert = (_builder(name, ca_cert.subject, key.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return _write(directory, name, cert, key)


def _ca(directory: Path, name: str) -> tuple[Pair, x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    cert = (_builder(name, None, key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return _write(directory, name, cert, key), cert, key


def make_pki(directory: Path) -> PKI:
    """Write a CA, a server certificate for 127.0.0.1/localhost and three client certificates."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_cert, ca_key = _ca(directory, "ca")
    server = _leaf(directory, "server", ca_cert, ca_key,
                   [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
                   ExtendedKeyUsageOID.SERVER_AUTH)
    client = _leaf(directory, "client", ca_cert, ca_key,
                   [x509.UniformResourceIdentifier("spiffe://test/prometheus")], ExtendedKeyUsageOID.CLIENT_AUTH)
    other = _leaf(directory, "other-client", ca_cert, ca_key,
                  [x509.DNSName("other.example")], ExtendedKeyUsageOID.CLIENT_AUTH)
    _rogue_ca, rogue_ca_cert, rogue_ca_key = _ca(directory / "rogue", "rogue-ca")
    rogue = _leaf(directory, "rogue-client", rogue_ca_cert, rogue_ca_key,
                  [x509.UniformResourceIdentifier("spiffe://test/prometheus")], ExtendedKeyUsageOID.CLIENT_AUTH)
    return PKI(ca=ca, server=server, client=client, other_client=other, rogue_client=rogue)
