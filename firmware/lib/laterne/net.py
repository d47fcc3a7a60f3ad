# Opening the broker link: a TCP socket with a timeout, optionally wrapped in TLS with server
# certificate verification. Works with CPython's and MicroPython's socket/ssl modules.
import binascii
import socket

try:
    import ssl
except ImportError:  # a build without TLS: plain TCP still works
    ssl = None


class TLSError(OSError):
    """TLS set-up or handshake failed (bad CA, untrusted or mismatched server certificate)."""


def open_socket(host, port, timeout_ms, ssl_context=None, server_hostname=None):
    """A connected socket (TLS-wrapped when ssl_context is given); every blocking call on it,
    connect and handshake included, is bounded by timeout_ms."""
    ai = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    if not ai:
        raise OSError("cannot resolve %s" % host)
    family, kind, proto, _, addr = ai[0][:5]
    sock = socket.socket(family, kind, proto)
    try:
        sock.settimeout(timeout_ms / 1000)
        sock.connect(addr)
        if ssl_context is not None:
            try:
                sock = ssl_context.wrap_socket(sock, server_hostname=server_hostname or host)
            except Exception as e:
                raise TLSError("TLS handshake with %s failed: %s" % (host, _tls_reason(e)))
    except BaseException:
        sock.close()
        raise
    return sock


def _tls_reason(e):
    text = " ".join((str(e) or repr(e)).split())
    low = text.lower()
    # mbedtls gives short texts or bare negative codes; OpenSSL longer ones
    if "validity" in low or "expired" in low:  # the dates, checked against the node's clock
        return "server certificate not valid at the node's clock time (%s)" % text
    if "hostname" in low or "cn)" in low or "common name" in low:
        return "server certificate is for another host name (%s)" % text
    if "verif" in low or "-9984" in text or "x509" in low or "certificate" in low:
        return "server certificate not trusted by the configured CA (%s)" % text
    return text


def make_tls_context(cadata_or_path, verify=True):
    """An SSLContext for a TLS client. cadata_or_path: PEM text (str or bytes), DER bytes, or
    the path of a PEM/DER file. With verify=False the server is not authenticated."""
    if ssl is None:
        raise TLSError("this build has no ssl module")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if not verify:
        if hasattr(ctx, "check_hostname"):
            ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    ctx.verify_mode = ssl.CERT_REQUIRED
    if cadata_or_path is None:
        raise TLSError("TLS verification needs a CA certificate")
    # mbedtls parses one DER certificate per call and ignores what follows it
    # (modtls_mbedtls.c: load_verify_locations -> mbedtls_x509_crt_parse, which appends to the
    # chain): a bundle is loaded one certificate at a time.
    for der in _ca_ders(cadata_or_path):
        try:
            ctx.load_verify_locations(cadata=der)
        except Exception as e:
            raise TLSError("CA certificate not usable: %s" % (str(e) or repr(e)))
    return ctx


def _ca_ders(src):
    """DER bytes of each CA certificate: MicroPython's ssl takes only DER (CPython takes
    both), so PEM is converted here."""
    if isinstance(src, str):
        if "-----BEGIN" not in src:
            with open(src, "rb") as f:
                return _ca_ders(f.read())
        src = src.encode()
    src = bytes(src)
    if b"-----BEGIN" not in src:
        return [src]
    ders = []
    for block in src.split(b"-----BEGIN CERTIFICATE-----")[1:]:
        end = block.find(b"-----END CERTIFICATE-----")
        if end < 0:
            raise TLSError("CA certificate: PEM block without END line")
        try:
            ders.append(binascii.a2b_base64(b"".join(block[:end].split())))
        except ValueError:
            raise TLSError("CA certificate: PEM body is not base64")
    if not ders:
        raise TLSError("CA certificate: no CERTIFICATE block in the PEM text")
    return ders
