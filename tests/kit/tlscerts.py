# Test certificates made on the fly with `cryptography`: a CA, a server certificate for
# localhost/127.0.0.1 signed by it, and an unrelated CA (for the "wrong CA" case).
import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def _ca(cn, now):
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def make(dirpath):
    """Write ca.pem, server.pem, server.key, other_ca.pem and bundle.pem (other_ca, then ca)
    into dirpath; return their paths."""
    d = Path(dirpath)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, ca = _ca("laterne test CA", now)
    _, other = _ca("someone else's CA", now)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name("localhost")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = {"ca": d / "ca.pem", "cert": d / "server.pem", "key": d / "server.key",
             "other_ca": d / "other_ca.pem", "bundle": d / "bundle.pem"}
    paths["ca"].write_bytes(_pem(ca))
    paths["other_ca"].write_bytes(_pem(other))
    paths["bundle"].write_bytes(_pem(other) + _pem(ca))
    paths["cert"].write_bytes(_pem(cert))
    paths["key"].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.TraditionalOpenSSL,
                                               serialization.NoEncryption()))
    return paths


def make_for_broker():
    """make() into a fresh folder mosquitto can read: started as root it drops to its own
    user, so the folder and files must be world-readable (pytest's tmp_path is not)."""
    import os
    import tempfile
    d = tempfile.mkdtemp(prefix="laterne-tls-")
    os.chmod(d, 0o755)
    paths = make(d)
    for p in paths.values():
        os.chmod(p, 0o644)
    return paths
