"""Amazon SES domain identities through ``boto3`` (sesv2), with Easy DKIM.

SES has no "validate" call: it checks the DNS by itself, so ``validate`` reads the identity.
Its records are three CNAMEs ``<token>._domainkey.<domain>`` → ``<token>.dkim.amazonses.com``;
SES issues the tokens asynchronously (and moto never does), so an identity may come back
without records for a while: the records appear on a later read.
"""

from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)
from botocore.parsers import ResponseParserError
from django.conf import settings

from comms.providers import aws
from comms.providers.vendor_http import vendor_reason
from domains.providers.base import (
    DnsRecord,
    DomainAuth,
    DomainNotFoundAtProvider,
    DomainProviderConfigurationError,
    DomainProviderError,
)

CONFIGURATION_CODES = frozenset({
    "InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch",
    "AccessDenied", "AccessDeniedException", "ExpiredToken", "ExpiredTokenException",
    "IncompleteSignature", "MissingAuthenticationToken",
})
NO_TOKENS = "SES has not issued the DKIM tokens yet; the records appear on a later check."


class SesDomains:
    """The identity's name is its id at SES: ``provider_id`` is the domain itself."""

    name = "ses"

    def __init__(self, client: Any) -> None:
        self.client = client

    def create(self, domain: str) -> DomainAuth:
        try:
            response = _call(lambda: self.client.create_email_identity(EmailIdentity=domain))
        except DomainProviderError as exc:
            # An identity made outside Herald (the console, another tool) is adopted as is.
            if "AlreadyExists" not in str(exc):
                raise
            return self.get(domain)
        return identity_auth(domain, response)

    def get(self, provider_id: str) -> DomainAuth:
        response = _call(lambda: self.client.get_email_identity(EmailIdentity=provider_id))
        return identity_auth(provider_id, response)

    validate = get

    def delete(self, provider_id: str) -> None:
        _call(lambda: self.client.delete_email_identity(EmailIdentity=provider_id))


def from_settings() -> SesDomains:
    """The adapter on the platform's SES region (``HERALD_SES_REGION``)."""
    # Domain calls are an admin's, not the send pipeline's: botocore retries them twice.
    return SesDomains(aws.shared_client(
        "sesv2", region=settings.HERALD_SES_REGION,
        endpoint_url=settings.HERALD_SES_ENDPOINT_URL,
        timeout=settings.HERALD_PROVIDER_TIMEOUT_SECONDS, attempts=3))


def dkim_records(domain: str, tokens: list[str], *, valid: bool) -> list[DnsRecord]:
    return [DnsRecord(type="cname", host=f"{token}._domainkey.{domain}",
                      data=f"{token}.dkim.amazonses.com", valid=valid) for token in tokens]


def identity_auth(domain: str, response: dict[str, Any]) -> DomainAuth:
    """``create_email_identity`` / ``get_email_identity`` answers as plain data."""
    dkim = response.get("DkimAttributes") or {}
    verified = bool(response.get("VerifiedForSendingStatus")) or (
        response.get("VerificationStatus") == "SUCCESS")
    records_valid = dkim.get("Status") == "SUCCESS" or verified
    tokens = [str(t) for t in dkim.get("Tokens") or []]
    reasons = {}
    if not records_valid and dkim.get("Status") in ("FAILED", "TEMPORARY_FAILURE"):
        reasons = {r.host: f"SES DKIM status {dkim['Status']}" for r in
                   dkim_records(domain, tokens, valid=False)}
    return DomainAuth(provider_id=domain, domain=domain, valid=verified,
                      records=dkim_records(domain, tokens, valid=records_valid),
                      reasons=reasons, note="" if tokens else NO_TOKENS)


def _call(request) -> dict[str, Any]:
    try:
        return request()
    except ClientError as exc:
        status, code, message, _ = aws.answer(exc)
        text = vendor_reason("SES", status, code, body=message)
        if code == "NotFoundException":
            raise DomainNotFoundAtProvider(text) from exc
        if code in CONFIGURATION_CODES:
            raise DomainProviderConfigurationError(text) from exc
        raise DomainProviderError(text) from exc
    except (NoCredentialsError, PartialCredentialsError, NoRegionError) as exc:
        raise DomainProviderConfigurationError(f"SES is not configured: {exc}") from exc
    except ResponseParserError as exc:  # its text quotes the answer: never shown
        raise DomainProviderError(
            f"{vendor_reason('SES', body=str(exc))} answered unreadably.") from None
    except (BotoCoreError, OSError) as exc:
        raise DomainProviderError(f"SES is unreachable or refused the request: {exc}") from exc

