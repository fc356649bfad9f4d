"""Amazon SNS message signatures (SignatureVersion 1: SHA1, 2: SHA256; RSA PKCS#1 v1.5).

The signing certificate is fetched only from ``https://sns.<region>.amazonaws.com/
SimpleNotificationService-<hex>.pem`` and cached in-process. Tests inject their own
certificate loader (``certificate_loader_set`` or the ``certificate_loader`` parameter).
"""

import base64
import binascii
import logging
import re
import threading
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

log = logging.getLogger(__name__)

SNS_HOST = re.compile(r"sns\.[a-z0-9]+(?:-[a-z0-9]+)+\.amazonaws\.com")
CERT_PATH = re.compile(r"/SimpleNotificationService-[0-9a-f]+\.pem")
HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}
SIGNED_KEYS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token",
                                 "TopicArn", "Type"),
}
SIGNED_KEYS["UnsubscribeConfirmation"] = SIGNED_KEYS["SubscriptionConfirmation"]
FETCH_TIMEOUT_SECONDS = 5.0
MAX_CERT_BYTES = 64 * 1024

CertificateLoader = Callable[[str], x509.Certificate]


class CertificateUnavailable(Exception):
    """The signing certificate could not be fetched now: worth SNS retrying later."""


def sns_url_valid(url: str, path: re.Pattern[str]) -> bool:
    """An ``https://sns.<region>.amazonaws.com`` URL (no port, no credentials) with ``path``."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    return (parts.scheme == "https" and port is None and not parts.username
            and parts.hostname is not None and SNS_HOST.fullmatch(parts.hostname) is not None
            and parts.netloc == parts.hostname and path.fullmatch(parts.path) is not None)


def signing_cert_url_valid(url: str) -> bool:
    return sns_url_valid(url, CERT_PATH) and not urlsplit(url).query


def string_to_sign(message: dict[str, Any]) -> str:
    """SNS's canonical form: ``key\\nvalue\\n`` for the type's keys, in order, present ones.

    Raises ``ValueError`` for an unknown type or a missing mandatory key.
    """
    keys = SIGNED_KEYS.get(str(message.get("Type")))
    if keys is None:
        raise ValueError(f"unknown SNS message type {message.get('Type')!r}")
    lines = []
    for key in keys:
        value = message.get(key)
        if value is None:
            if key == "Subject":  # the only optional signed key
                continue
            raise ValueError(f"SNS message without {key}")
        lines.append(f"{key}\n{value}\n")
    return "".join(lines)


def message_verify(message: dict[str, Any], *,
                   certificate_loader: CertificateLoader | None = None) -> bool:
    """True if SNS signed ``message``. Raises ``CertificateUnavailable`` if the (valid-looking)
    certificate URL could not be fetched."""
    algorithm = HASHES.get(str(message.get("SignatureVersion")))
    cert_url = str(message.get("SigningCertURL", ""))
    if algorithm is None or not signing_cert_url_valid(cert_url):
        return False
    try:
        signed = string_to_sign(message).encode("utf-8")
        signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
    except (ValueError, binascii.Error):
        return False
    certificate = (certificate_loader or _loader)(cert_url)
    return _signature_matches(certificate, signature, signed, algorithm())


def _signature_matches(certificate: x509.Certificate, signature: bytes, signed: bytes,
                       algorithm: hashes.HashAlgorithm) -> bool:
    now = datetime.now(tz=UTC)
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        log.warning("SNS signing certificate outside its validity period")
        return False
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        return False
    try:
        key.verify(signature, signed, padding.PKCS1v15(), algorithm)
    except InvalidSignature:
        return False
    return True


# --- certificates ---------------------------------------------------------------------------

_cache: dict[str, x509.Certificate] = {}
_cache_lock = threading.Lock()


def certificate_fetch(url: str) -> x509.Certificate:
    """The certificate at an already validated SNS URL, fetched once per process."""
    with _cache_lock:
        cached = _cache.get(url)
    if cached is not None:
        return cached
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_SECONDS) as response:
            pem = response.read(MAX_CERT_BYTES)
        certificate = x509.load_pem_x509_certificate(pem)
    except (OSError, ValueError) as exc:
        raise CertificateUnavailable(f"SNS certificate {url}: {exc}") from exc
    with _cache_lock:
        if len(_cache) >= 64:  # SNS rotates rarely: a few URLs per process in practice
            _cache.clear()
        _cache[url] = certificate
    return certificate


_loader: CertificateLoader = certificate_fetch


def certificate_loader_set(loader: CertificateLoader | None) -> CertificateLoader:
    """Replace the process's certificate loader (``None``: the HTTPS fetch); returns the old
    one so tests can put it back."""
    global _loader
    previous, _loader = _loader, loader or certificate_fetch
    return previous
