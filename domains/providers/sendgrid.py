"""SendGrid domain authentication through the ``sendgrid`` package (``/v3/whitelabel/domains``).

SendGrid answers with named records (``mail_cname``, ``dkim1``, ``dkim2`` with automatic
security) each ``{valid, type, host, data}``; validation answers ``validation_results`` by
the same names with a ``reason`` when a record is not (yet) right.
"""

import http.client
import json
import urllib.error
from typing import Any

from django.conf import settings
from python_http_client import exceptions as http_errors
from sendgrid import SendGridAPIClient

from comms.providers.sendgrid import error_field
from comms.providers.vendor_http import clean, vendor_reason
from domains.providers.base import (
    DnsRecord,
    DomainAuth,
    DomainNotFoundAtProvider,
    DomainProviderConfigurationError,
    DomainProviderError,
)

RECORD_ORDER = ("mail_cname", "dkim1", "dkim2", "mail_server", "subdomain_spf", "dkim")


class SendGridDomains:
    name = "sendgrid"

    def __init__(self, client: SendGridAPIClient) -> None:
        self.client = client

    @classmethod
    def from_settings(cls, *, api_key: str, host: str, timeout: float) -> "SendGridDomains":
        client = SendGridAPIClient(api_key, host=host)
        client.client.timeout = timeout
        return cls(client)

    @property
    def _domains(self) -> Any:
        return self.client.client.whitelabel.domains

    def create(self, domain: str) -> DomainAuth:
        body = {"domain": domain, "automatic_security": True}
        return domain_auth(_call(lambda: self._domains.post(request_body=body)))

    def get(self, provider_id: str) -> DomainAuth:
        return domain_auth(_call(lambda: self._domains._(provider_id).get()))

    def validate(self, provider_id: str) -> DomainAuth:
        """Ask SendGrid to check the DNS now, then read the records back with their flags."""
        results = _call(lambda: self._domains._(provider_id).validate.post())
        return domain_auth(_call(lambda: self._domains._(provider_id).get()), results)

    def delete(self, provider_id: str) -> None:
        _call(lambda: self._domains._(provider_id).delete(), expect_body=False)


def from_settings() -> SendGridDomains:
    """The adapter with the platform's SendGrid key (``SENDGRID_API_KEY``)."""
    if not settings.SENDGRID_API_KEY:
        raise DomainProviderConfigurationError("SENDGRID_API_KEY is not set.")
    return SendGridDomains.from_settings(
        api_key=settings.SENDGRID_API_KEY, host=settings.SENDGRID_API_HOST,
        timeout=settings.HERALD_PROVIDER_TIMEOUT_SECONDS)


def _call(request, *, expect_body: bool = True) -> dict[str, Any]:
    try:
        response = request()
    except http_errors.HTTPError as exc:
        raise _classify(exc) from exc
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        raise DomainProviderError(f"SendGrid is unreachable: {exc}") from exc
    if not expect_body:
        return {}
    try:
        data = json.loads(response.body or b"{}")
    except ValueError as exc:
        raise DomainProviderError("SendGrid answered with something that is not JSON.") from exc
    if not isinstance(data, dict):
        raise DomainProviderError("SendGrid answered with an unexpected document.")
    return data


def _classify(exc: http_errors.HTTPError) -> Exception:
    text = vendor_reason("SendGrid", exc.status_code, error_field(exc.body), body=exc.body)
    if exc.status_code == 404:
        return DomainNotFoundAtProvider(text)
    if exc.status_code in (401, 403):
        return DomainProviderConfigurationError(text)
    return DomainProviderError(text)




def _named_records(data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    dns = data.get("dns") or {}
    names = [n for n in RECORD_ORDER if n in dns] + sorted(set(dns) - set(RECORD_ORDER))
    return [(n, dns[n]) for n in names if isinstance(dns[n], dict)]


def domain_auth(data: dict[str, Any], results: dict[str, Any] | None = None) -> DomainAuth:
    """A SendGrid domain document (and a validation's verdicts) as plain data."""
    if "id" not in data:
        raise DomainProviderError("SendGrid answered without a domain id.")
    verdicts = (results or {}).get("validation_results") or {}
    records, reasons = [], {}
    for name, r in _named_records(data):
        record = DnsRecord(type=str(r.get("type", "")).lower(),
                           host=str(r.get("host", "")).lower().rstrip("."),
                           data=str(r.get("data", "")).rstrip("."), valid=bool(r.get("valid")))
        records.append(record)
        verdict = verdicts.get(name)
        if isinstance(verdict, dict) and not verdict.get("valid") and verdict.get("reason"):
            reasons[record.host] = clean(str(verdict["reason"]), 300)
    valid = bool((results or data).get("valid"))
    return DomainAuth(provider_id=str(data["id"]), domain=str(data.get("domain", "")),
                      valid=valid, records=records, reasons=reasons)
