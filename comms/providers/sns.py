"""SMS through Amazon SNS with ``boto3`` (``publish(PhoneNumber=…)``, no topic).

The account's own access keys are required: falling back to boto3's default credential
chain would send a tenant's messages on whatever AWS identity Herald itself runs as.
"""

from typing import Any

from botocore.exceptions import ClientError

from comms.providers import aws
from comms.providers.base import (
    Adapter,
    ChannelMessage,
    ProviderTransientError,
    SendResult,
)
from comms.providers.vendor_http import sms_text

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
    vendor = "SNS"
    channel = "sms"
    url_setting = "endpoint_url"
    required_credentials = ("access_key_id", "secret_access_key")
    transient_codes = TRANSIENT_CODES
    rate_limit_text = "{detail}"
    configuration_codes = CONFIGURATION_CODES
    configuration_text = "SNS rejected the AWS credentials: {detail}"
    recipient_text = "Not a valid SMS number: {detail}"
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
        self.credentials_check(credentials)
        self.sender_id = config.get("sender_id") or ""
        self.sms_type = config.get("sms_type") or "Transactional"
        self.timeout = timeout
        self.client = aws.client(
            "sns", region=config.get("region") or DEFAULT_REGION,
            endpoint_url=config.get("endpoint_url") or "", timeout=timeout,
            access_key_id=credentials["access_key_id"],
            secret_access_key=credentials["secret_access_key"],
            pinned=bool(config.get("endpoint_url")))  # the account's URL: behind the guard

    def send(self, message: ChannelMessage) -> SendResult:
        response = aws.call(self, lambda: self.client.publish(**self.publish_params(message)),
                            timeout=self.timeout, answered=self._error)
        message_id = response.get("MessageId", "")
        if not message_id:
            raise ProviderTransientError("SNS answered without a MessageId.")
        return SendResult(provider_message_id=message_id)

    def _error(self, exc: ClientError) -> Exception:
        status, code, detail, headers = aws.answer(exc)
        return self.answer_error(status, code=code, body=detail, headers=headers, recipient=(
            code in INVALID_PARAMETER_CODES and "phone" in detail.lower()))

    def publish_params(self, message: ChannelMessage) -> dict[str, Any]:
        """The ``sns.publish`` arguments for one message."""
        attributes = {SMS_TYPE: {"DataType": "String", "StringValue": self.sms_type}}
        sender_id = message.options.get("sender_id") or self.sender_id
        if sender_id:
            attributes[SENDER_ID] = {"DataType": "String", "StringValue": str(sender_id)}
        return {"PhoneNumber": message.to, "Message": sms_text(message.title, message.text),
                "MessageAttributes": attributes}

