"""SMS through Amazon SNS with ``boto3`` (``publish(PhoneNumber=…)``, no topic).

The account's own access keys are required: falling back to boto3's default credential
chain would send a tenant's messages on whatever AWS identity Herald itself runs as.
"""

from typing import Any

import boto3
import urllib3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.parsers import ResponseParserError

from common import http
from comms.providers.base import (
    Adapter,
    ChannelMessage,
    ProviderConfigurationError,
    ProviderInvalidRecipient,
    ProviderPermanentError,
    ProviderTransientError,
    SendResult,
)
from comms.providers.vendor_http import botocore_pinned, vendor_reason

DEFAULT_REGION = "us-east-1"
SENDER_ID = "AWS.SNS.SMS.SenderID"
SMS_TYPE = "AWS.SNS.SMS.SMSType"
TRANSIENT_CODES = frozenset({
    "Throttled", "Throttling", "ThrottlingException", "ThrottledException",
    "InternalError", "InternalFailure", "ServiceUnavailable", "RequestTimeout",
    "KMSThrottling",
})
# Every send would fail the same way until someone fixes the keys or their IAM policy.
CONFIGURATION_CODES = frozenset({
    "InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch",
    "AuthorizationError", "AccessDenied", "AccessDeniedException", "ExpiredToken",
    "IncompleteSignature", "MissingAuthenticationToken", "OptInRequired", "InvalidSecurity",
})
INVALID_PARAMETER_CODES = frozenset({"InvalidParameter", "InvalidParameterValue"})


class SnsSmsProvider(Adapter):
    name = "sns"
    channel = "sms"
    config_fields = {
        "region": f"AWS region of SNS (default {DEFAULT_REGION}).",
        "endpoint_url": "SNS endpoint URL, only to point Herald at a test server.",
        "sender_id": "Alphanumeric sender id (1-11 characters) where the country allows it.",
        "sms_type": "Transactional (default, higher delivery priority) or Promotional.",
    }
    credential_fields = {
        "access_key_id": "AWS access key id of an IAM user allowed sns:Publish.",
        "secret_access_key": "Its secret access key.",
    }

    def __init__(self, config: dict, credentials: dict, timeout: float) -> None:
        key_id = credentials.get("access_key_id") or ""
        secret = credentials.get("secret_access_key") or ""
        if not (key_id and secret):
            raise ProviderConfigurationError(
                "The SNS integration needs an access_key_id and a secret_access_key.")
        self.sender_id = config.get("sender_id") or ""
        self.sms_type = config.get("sms_type") or "Transactional"
        self.timeout = timeout
        # One attempt, no botocore retries: the delivery pipeline owns retries and backoff.
        # (In a Config, "max_attempts" counts retries only; "total_max_attempts" counts all.)
        self.client = boto3.session.Session().client(
            "sns", region_name=config.get("region") or DEFAULT_REGION,
            endpoint_url=config.get("endpoint_url") or None,
            aws_access_key_id=key_id, aws_secret_access_key=secret,
            config=Config(connect_timeout=timeout, read_timeout=timeout,
                          retries={"mode": "standard", "total_max_attempts": 1}),
        )
        if config.get("endpoint_url"):  # the account's URL: behind the SSRF guard
            botocore_pinned(self.client, timeout)

    def send(self, message: ChannelMessage) -> SendResult:
        try:
            response = self.client.publish(**self.publish_params(message))
        except ClientError as exc:
            raise _classify(exc) from exc
        except http.Refused as exc:
            raise ProviderConfigurationError(f"SNS endpoint_url refused: {exc}") from None
        except (BotoConnectionError, HTTPClientError, urllib3.exceptions.HTTPError,
                OSError) as exc:
            raise ProviderTransientError(_unreachable(exc, self.timeout)) from exc
        except ResponseParserError as exc:  # its text quotes the answer: never shown
            raise ProviderTransientError(
                f"{vendor_reason('SNS', body=str(exc))} answered unreadably.") from None
        except BotoCoreError as exc:  # a parameter botocore itself refuses
            raise ProviderPermanentError(f"SNS refused the request: {exc}"[:300]) from exc
        message_id = response.get("MessageId", "")
        if not message_id:
            raise ProviderTransientError("SNS answered without a MessageId.")
        return SendResult(provider_message_id=message_id)

    def publish_params(self, message: ChannelMessage) -> dict[str, Any]:
        """The ``sns.publish`` arguments for one message."""
        attributes = {SMS_TYPE: {"DataType": "String", "StringValue": self.sms_type}}
        sender_id = message.options.get("sender_id") or self.sender_id
        if sender_id:
            attributes[SENDER_ID] = {"DataType": "String", "StringValue": str(sender_id)}
        return {"PhoneNumber": message.to, "Message": sms_text(message),
                "MessageAttributes": attributes}


def sms_text(message: ChannelMessage) -> str:
    title = message.title.strip()
    return f"{title}\n\n{message.text}" if title else message.text


def _classify(exc: ClientError) -> Exception:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    detail = str(error.get("Message", "")).strip()
    metadata = exc.response.get("ResponseMetadata", {})
    status = int(metadata.get("HTTPStatusCode") or 0)
    text = vendor_reason("SNS", status, code, body=detail)
    if code in TRANSIENT_CODES or status == 429 or status >= 500:
        return ProviderTransientError(text, retry_after=_retry_after(metadata))
    if code in CONFIGURATION_CODES or status in (401, 403):
        return ProviderConfigurationError(f"SNS rejected the AWS credentials: {text}")
    if code in INVALID_PARAMETER_CODES and "phone" in detail.lower():
        return ProviderInvalidRecipient(f"Not a valid SMS number: {text}")
    return ProviderPermanentError(text)


def _retry_after(metadata: dict[str, Any]) -> float | None:
    value = (metadata.get("HTTPHeaders") or {}).get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


def _unreachable(exc: Exception, timeout: float) -> str:
    # botocore's own text carries the endpoint URL; callers only need to know what failed.
    if "timeout" in type(exc).__name__.lower():
        return f"SNS did not answer within {timeout:g}s."
    return "SNS unreachable (connection failed)."
