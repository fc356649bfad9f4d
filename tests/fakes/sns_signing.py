"""Genuinely signed SNS messages for tests: a test CA, a signing certificate it issued, and
SNS's string-to-sign written out again here (independently of ``comms.callbacks.sns``)."""

import base64
import json
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from comms.callbacks.sns import CertificateUnavailable

NOTIFICATION_KEYS = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
CONFIRMATION_KEYS = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token",
                     "TopicArn", "Type"]


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Herald Test CA"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject: str, issuer: str, public_key: Any, signing_key: Any,
                 *, ca: bool) -> x509.Certificate:
    now = datetime.now(tz=UTC)
    return (
        x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
        .public_key(public_key).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(signing_key, hashes.SHA256())
    )


class SnsSigner:
    """Signs SNS envelopes as SNS does, with a certificate issued by a throwaway CA."""

    def __init__(self, region: str = "us-east-1") -> None:
        self.region = region
        ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ca = _certificate("Herald Test Root", "Herald Test Root", ca_key.public_key(),
                               ca_key, ca=True)
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.certificate = _certificate("sns.amazonaws.com", "Herald Test Root",
                                        self.key.public_key(), ca_key, ca=False)
        self.cert_url = (f"https://sns.{region}.amazonaws.com/"
                         f"SimpleNotificationService-{secrets.token_hex(16)}.pem")
        self.fetched: list[str] = []

    def loader(self, url: str) -> x509.Certificate:
        """The injected certificate loader: knows one URL, checks the chain to the test CA."""
        self.fetched.append(url)
        if url != self.cert_url:
            raise CertificateUnavailable(f"404 for {url}")
        self.certificate.verify_directly_issued_by(self.ca)
        return self.certificate

    def sign(self, envelope: dict[str, Any], *, version: str = "2") -> dict[str, Any]:
        keys = NOTIFICATION_KEYS if envelope["Type"] == "Notification" else CONFIRMATION_KEYS
        text = "".join(f"{key}\n{envelope[key]}\n" for key in keys if key in envelope)
        algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
        signature = self.key.sign(text.encode("utf-8"), padding.PKCS1v15(), algorithm)
        return {**envelope, "SignatureVersion": version,
                "Signature": base64.b64encode(signature).decode("ascii"),
                "SigningCertURL": self.cert_url}

    def notification(self, message: dict[str, Any] | str, *, topic_arn: str,
                     version: str = "2", subject: str | None = None) -> dict[str, Any]:
        envelope = {
            "Type": "Notification", "MessageId": str(uuid.uuid4()), "TopicArn": topic_arn,
            "Message": message if isinstance(message, str) else json.dumps(message),
            "Timestamp": _now(),
            "UnsubscribeURL": f"https://sns.{self.region}.amazonaws.com/?Action=Unsubscribe"
                              f"&SubscriptionArn={topic_arn}:{uuid.uuid4()}",
        }
        if subject is not None:
            envelope["Subject"] = subject
        return self.sign(envelope, version=version)

    def confirmation(self, kind: str, *, topic_arn: str, version: str = "2") -> dict[str, Any]:
        token = secrets.token_hex(32)
        return self.sign({
            "Type": kind, "MessageId": str(uuid.uuid4()), "Token": token,
            "TopicArn": topic_arn, "Timestamp": _now(),
            "Message": f"You have chosen to subscribe to the topic {topic_arn}.\n"
                       "To confirm the subscription, visit the SubscribeURL included in this "
                       "message.",
            "SubscribeURL": f"https://sns.{self.region}.amazonaws.com/?Action="
                            f"ConfirmSubscription&TopicArn={topic_arn}&Token={token}",
        }, version=version)


def _now() -> str:
    return datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
