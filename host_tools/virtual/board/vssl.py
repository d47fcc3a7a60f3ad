# `ssl` for the virtual board: the unix port's TLS, plus what the chip's adds. mbedtls checks a
# server certificate's validity dates against the clock; on the ESP32 that clock is the RTC
# (main.c: mbedtls_platform_set_time -> gettimeofday), which reads 2000 after a power-on, so
# every certificate is "not yet valid" until the time is set. The unix port checks against
# the host's clock, so this module checks the dates again against the board's RTC.
import ssl as _host

import machine
import vclock

CERT_NONE = _host.CERT_NONE
CERT_REQUIRED = _host.CERT_REQUIRED
PROTOCOL_TLS_CLIENT = _host.PROTOCOL_TLS_CLIENT


class SSLContext:
    def __init__(self, protocol):
        self._ctx = _host.SSLContext(protocol)
        self._refused = None
        # mbedtls asks this for every certificate of the chain (modtls_mbedtls.c); a non-zero
        # answer fails the handshake, as a date check failing on the chip would
        self._ctx._context.verify_callback = self._check

    @property
    def verify_mode(self):
        return self._ctx.verify_mode

    @verify_mode.setter
    def verify_mode(self, mode):
        self._ctx.verify_mode = mode

    def load_verify_locations(self, cafile=None, cadata=None):
        self._ctx.load_verify_locations(cafile=cafile, cadata=cadata)

    def _check(self, cert, depth):
        if depth or self._ctx.verify_mode != CERT_REQUIRED:
            return 0
        not_before, not_after = validity(bytes(cert))
        now = machine.board.clock.time() + vclock.EPOCH_2000_UNIX
        if now < not_before:
            self._refused = "The certificate validity starts in the future"
        elif now > not_after:
            self._refused = "The certificate validity has expired"
        return -9984 if self._refused else 0  # MBEDTLS_ERR_X509_CERT_VERIFY_FAILED

    def wrap_socket(self, sock, server_hostname=None):
        self._refused = None
        try:
            return self._ctx.wrap_socket(sock, server_hostname=server_hostname)
        except Exception:
            if self._refused:
                raise ValueError(self._refused)
            raise


def _tlv(der, i):
    """(tag, start of the value, its length) of the DER element at i."""
    tag, n = der[i], der[i + 1]
    i += 2
    if n & 0x80:
        k = n & 0x7F
        n = int.from_bytes(der[i:i + k], "big")
        i += k
    return tag, i, n


def validity(der):
    """(notBefore, notAfter) in Unix seconds of an X.509 certificate in DER."""
    _, i, _ = _tlv(der, 0)             # Certificate
    _, i, _ = _tlv(der, i)             # tbsCertificate
    if der[i] == 0xA0:                 # [0] version
        _, j, n = _tlv(der, i)
        i = j + n
    for _ in range(3):                 # serialNumber, signature, issuer
        _, j, n = _tlv(der, i)
        i = j + n
    _, i, _ = _tlv(der, i)             # validity
    times = []
    for _ in range(2):
        tag, j, n = _tlv(der, i)
        text = bytes(der[j:j + n]).decode()
        if tag == 0x17:                # UTCTime YYMMDDHHMMSSZ
            year = int(text[:2])
            text = ("20" if year < 50 else "19") + text
        times.append(vclock.mktime2000((int(text[:4]), int(text[4:6]), int(text[6:8]),
                                        int(text[8:10]), int(text[10:12]), int(text[12:14])))
                     + vclock.EPOCH_2000_UNIX)
        i = j + n
    return times[0], times[1]
