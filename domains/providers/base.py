"""The domain-authentication interface and its error types."""

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class DnsRecord:
    type: str  # "cname", "txt", "mx" (lowercase, as SendGrid writes them)
    host: str
    data: str
    valid: bool = False  # the provider's view

    def as_json(self) -> dict:
        return {"type": self.type, "host": self.host, "data": self.data, "valid": self.valid}


@dataclass(frozen=True)
class DomainAuth:
    """A domain as the provider knows it."""

    provider_id: str
    domain: str
    valid: bool
    records: list[DnsRecord]
    # Why records are not valid yet, by host (the provider's words), after a validation.
    reasons: dict[str, str] = field(default_factory=dict)
    note: str = ""  # anything worth showing, e.g. "SES has not issued DKIM tokens yet"


class DomainProviderError(Exception):
    """The provider refused or failed; the message is the provider's own, for the caller."""


class DomainNotFoundAtProvider(DomainProviderError):
    """The provider does not know this id (deleted there, or never created)."""


class DomainProviderConfigurationError(Exception):
    """Herald is misconfigured (no key, unknown provider): never reported as the caller's fault."""


class DomainProvider(Protocol):
    name: str

    def create(self, domain: str) -> DomainAuth: ...

    def get(self, provider_id: str) -> DomainAuth: ...

    def validate(self, provider_id: str) -> DomainAuth: ...

    def delete(self, provider_id: str) -> None: ...
