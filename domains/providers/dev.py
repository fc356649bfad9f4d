"""A stand-in provider for development (outbox, sandbox and smtp cannot authenticate domains).

It generates records shaped like SendGrid's, derived from the domain alone (it keeps no
state), and reports the domain valid on validation, so that ``make run`` can walk the whole
flow: create, validate, verified and enabled, sends from the domain. Herald's own DNS check
still shows, per record, whether it is really published.
"""

import hashlib

from domains.providers.base import DnsRecord, DomainAuth

TARGET = "wl.herald.localhost"


def _number(domain: str) -> int:
    return int(hashlib.sha256(domain.encode()).hexdigest()[:8], 16) % 9_000_000 + 1_000_000


class DevDomains:
    name = "dev"

    def create(self, domain: str) -> DomainAuth:
        number = _number(domain)
        user = f"u{number}.{TARGET}"
        records = [
            DnsRecord("cname", f"em{number % 10_000}.{domain}", user),
            DnsRecord("cname", f"s1._domainkey.{domain}", f"s1.domainkey.{user}"),
            DnsRecord("cname", f"s2._domainkey.{domain}", f"s2.domainkey.{user}"),
        ]
        return DomainAuth(provider_id=str(number), domain=domain, valid=False, records=records)

    def get(self, provider_id: str) -> DomainAuth:
        """No records: Herald keeps the ones it stored at creation."""
        return DomainAuth(provider_id=provider_id, domain="", valid=False, records=[])

    def validate(self, provider_id: str) -> DomainAuth:
        return DomainAuth(provider_id=provider_id, domain="", valid=True, records=[])

    def delete(self, provider_id: str) -> None:
        return None
