"""Writes on sender domains and brands (spec 001): create at the provider, validate (by hand
or by the poller), activate, deactivate, delete; brand upkeep.

No database transaction is held across a provider call: the provider is asked first, and
only a complete answer is stored (a provider error stores nothing).
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Account
from common import jobs
from common.errors import Conflict, HeraldError
from common.times import iso
from domains import dns, names
from domains.models import Brand, SenderDomain, SenderDomainEvent
from domains.providers import domain_provider, provider_name
from domains.providers.base import (
    DomainAuth,
    DomainNotFoundAtProvider,
    DomainProvider,
    DomainProviderConfigurationError,
    DomainProviderError,
)

log = logging.getLogger(__name__)
Event = SenderDomainEvent.Name
# Checks of unverified domains are durable jobs claimed by their due time (common.jobs): the
# claim moves ``next_check_at`` a lease ahead; NULL means no check is due (verified, gave up).
CHECKS = jobs.JobTable(SenderDomain, status=None, token=None, due="next_check_at",
                       null_due=False, attempts=None, pending=Q(verified=False))


class ProviderFailed(HeraldError):
    """The provider refused or failed: a 502 carrying the provider's own message."""

    def __init__(self, provider: str, exc: Exception) -> None:
        code = ("provider_not_configured" if isinstance(exc, DomainProviderConfigurationError)
                else "provider_error")
        super().__init__(code, str(exc) or "The provider failed.", status=502, provider=provider)


def _provider(name: str) -> DomainProvider:
    try:
        return domain_provider(name)
    except DomainProviderConfigurationError as exc:
        log.error("Domain provider %s is misconfigured: %s", name, exc)
        raise ProviderFailed(name, exc) from exc


def _ask(name: str, call):
    """Run one provider call; its failures become a 502 with the provider's message."""
    try:
        return call(_provider(name))
    except DomainProviderConfigurationError as exc:
        log.error("Domain provider %s is misconfigured: %s", name, exc)
        raise ProviderFailed(name, exc) from exc
    except DomainProviderError as exc:
        raise ProviderFailed(name, exc) from exc


# --- create ---------------------------------------------------------------------------------

def sender_domain_create(*, account: Account, domain: str) -> tuple[SenderDomain, bool]:
    """Authenticate ``domain`` at the provider for ``account``; ``(row, created)``.

    The same domain again answers the existing row. 400 for a bad name, 409 for a domain of
    another account or when the account already has another domain (DELETE it first),
    502 when the provider fails (nothing is stored).
    """
    name = _normalized(domain)
    existing = _existing(account, name)
    if existing is not None:
        return existing, False
    provider = provider_name()
    auth = _ask(provider, lambda p: p.create(name))
    try:
        with transaction.atomic():
            row = _insert(account, name, provider, auth)
    except IntegrityError:
        _compensate(provider, auth.provider_id)
        existing = _existing(account, name)  # a concurrent identical request won
        if existing is None:
            raise _taken(name) from None
        return existing, False
    return row, True


def _normalized(domain: str) -> str:
    try:
        return names.domain_normalize(domain)
    except names.InvalidDomain as exc:
        raise HeraldError(exc.code, exc.message, status=400,
                          fields={"domain": exc.message}) from None


def _existing(account: Account, name: str) -> SenderDomain | None:
    row = SenderDomain.objects.filter(domain=name).first()
    if row is not None and row.account_id != account.id:
        raise _taken(name)
    if row is not None:
        return row
    other = SenderDomain.objects.filter(account=account).first()
    if other is not None:
        raise Conflict("domain_exists", f"This account already authenticates {other.domain}; "
                       "DELETE /comms/v1/api/comms/domain first to start over.")
    return None


def _taken(name: str) -> Conflict:
    return Conflict("domain_taken", f"{name} is already authenticated by another account.")


def _insert(account: Account, name: str, provider: str, auth: DomainAuth) -> SenderDomain:
    now = timezone.now()
    row = SenderDomain.objects.create(
        account=account, domain=name, provider=provider, provider_id=auth.provider_id,
        dns_records=[r.as_json() for r in auth.records], last_result=auth.note,
        next_check_at=now + timedelta(seconds=poll_delay(attempt=0)), check_attempts=0,
        give_up_at=now + timedelta(hours=settings.HERALD_DOMAIN_POLL_GIVE_UP_HOURS),
    )
    _record(row, Event.CREATED, provider=provider, providerId=auth.provider_id)
    brand_ensure_default(account=account, domain=name)
    return row


def _compensate(provider: str, provider_id: str) -> None:
    """Undo a provider-side creation nobody will own, unless a stored row uses the same id
    (SES identities are named by the domain: the winner of a race holds the same one)."""
    if SenderDomain.objects.filter(provider=provider, provider_id=provider_id).exists():
        return
    try:
        domain_provider(provider).delete(provider_id)
    except (DomainProviderError, DomainProviderConfigurationError):
        log.warning("Could not delete orphan %s domain %s", provider, provider_id, exc_info=True)


def _record(row: SenderDomain, name: str, **detail) -> None:
    SenderDomainEvent.objects.create(sender_domain=row, name=name, detail=detail)


# --- validate -------------------------------------------------------------------------------

def sender_domain_validate(*, sender_domain: SenderDomain) -> SenderDomain:
    """Validate now (API, admin): ask the provider and the DNS, store both, and on the first
    success verify and enable. A domain still invalid has its polling restarted (a poller
    that gave up starts over). Provider failures are a 502."""
    auth = _ask(sender_domain.provider, lambda p: p.validate(sender_domain.provider_id))
    return _apply(sender_domain, auth, restart=True)


def sender_domain_check(*, sender_domain_id: int) -> None:
    """One polling check (the task's body): like validate, but a provider failure or an
    invalid answer only schedules the next check, with backoff, until the give-up time."""
    row = SenderDomain.objects.filter(id=sender_domain_id, verified=False).first()
    if row is None:
        return
    try:
        auth = domain_provider(row.provider).validate(row.provider_id)
    except (DomainProviderError, DomainProviderConfigurationError) as exc:
        log.warning("Validating %s failed at %s: %s", row.domain, row.provider, exc)
        _reschedule(row, f"{row.provider} failed: {exc}", timezone.now())
        return
    _apply(row, auth, restart=False)


def _apply(row: SenderDomain, auth: DomainAuth, *, restart: bool) -> SenderDomain:
    now = timezone.now()
    records = _merged_records(row, auth)
    checks = dns.records_check(records, resolver=dns_resolver())
    result = _result_text(auth, checks)
    SenderDomain.objects.filter(id=row.id).update(
        dns_records=records, dns_checks=checks, dns_checked_at=now, last_checked_at=now,
        last_result=result, updated_at=now)
    if auth.valid:
        _verify(row, now)
    elif restart:
        _restart_polling(row, now)
        _record(row, Event.CHECKED, result=result)
    else:
        _reschedule(row, result, now)
    row.refresh_from_db()
    return row


def _merged_records(row: SenderDomain, auth: DomainAuth) -> list[dict]:
    """The provider's records; if it gave none (SES before its tokens, dev), the stored ones,
    valid once the provider says the domain is."""
    if auth.records:
        return [r.as_json() for r in auth.records]
    return [{**r, "valid": bool(auth.valid or r.get("valid"))} for r in row.dns_records]


def _result_text(auth: DomainAuth, checks: list[dict]) -> str:
    if auth.valid:
        return "Verified by the provider."
    missing = [c["host"] for c in checks if not c["found"]]
    parts = ["Not verified by the provider yet."]
    if auth.reasons:
        parts.append(" ".join(f"{host}: {why}" for host, why in auth.reasons.items()))
    if missing:
        parts.append(f"Not found in the DNS: {', '.join(missing)}.")
    if auth.note:
        parts.append(auth.note)
    return " ".join(parts)[:2000]


def _verify(row: SenderDomain, now: datetime) -> None:
    """First success only (the conditional UPDATE): verified, enabled, recorded, announced."""
    first = SenderDomain.objects.filter(id=row.id, verified=False).update(
        verified=True, enabled=True, verified_at=now, next_check_at=None, updated_at=now)
    if not first:
        return
    with transaction.atomic():
        _record(row, Event.VERIFIED)
        _record(row, Event.ENABLED, reason="verified")
        sender_domain_verified_emit(sender_domain_id=row.id)


def _reschedule(row: SenderDomain, result: str, now: datetime) -> None:
    attempts = row.check_attempts + 1
    if row.give_up_at is not None and now >= row.give_up_at:
        SenderDomain.objects.filter(id=row.id, verified=False).update(
            next_check_at=None, check_attempts=attempts, updated_at=now,
            last_result=f"Gave up after {attempts} checks. {result}"[:2000])
        _record(row, Event.GAVE_UP, attempts=attempts, result=result)
        return
    due = now + timedelta(seconds=poll_delay(attempt=attempts))
    SenderDomain.objects.filter(id=row.id, verified=False).update(
        next_check_at=due, check_attempts=attempts, last_result=result, updated_at=now)


def _restart_polling(row: SenderDomain, now: datetime) -> None:
    SenderDomain.objects.filter(id=row.id, verified=False).update(
        check_attempts=0, next_check_at=now + timedelta(seconds=poll_delay(attempt=0)),
        give_up_at=now + timedelta(hours=settings.HERALD_DOMAIN_POLL_GIVE_UP_HOURS))


def poll_delay(*, attempt: int) -> float:
    """Seconds before the next check after ``attempt`` failed ones: doubling from
    HERALD_DOMAIN_POLL_BASE_SECONDS up to HERALD_DOMAIN_POLL_MAX_SECONDS, minus up to 20 %
    jitter so domains created together do not poll together."""
    return jobs.backoff(attempt + 1, base=settings.HERALD_DOMAIN_POLL_BASE_SECONDS,
                        cap=settings.HERALD_DOMAIN_POLL_MAX_SECONDS, jitter=0.2)


def sender_domain_verified_emit(*, sender_domain_id: int) -> None:
    """Announce ``domain.verified`` to the account's webhook endpoint (in the transaction
    that recorded the verification: the message is sent once it commits)."""
    from webhooks.services import webhooks_emit_account_event

    row = SenderDomain.objects.get(id=sender_domain_id)
    webhooks_emit_account_event(account_id=row.account_id, event_type="domain.verified", data={
        "id": row.public_id, "domain": row.domain, "verified": row.verified,
        "enabled": row.enabled, "verifiedAt": iso(row.verified_at),
    })


def dns_resolver() -> dns.Resolver:
    return dns.Resolver(nameservers=tuple(settings.HERALD_DOMAIN_DNS_NAMESERVERS),
                        port=settings.HERALD_DOMAIN_DNS_PORT,
                        timeout=settings.HERALD_DOMAIN_DNS_TIMEOUT_SECONDS)


# --- polling --------------------------------------------------------------------------------

def sender_domains_poll(*, now: datetime | None = None, limit: int = 100) -> int:
    """Claim the unverified domains that are due and enqueue one check each; returns how many.

    The claim moves ``next_check_at`` a lease ahead (``common.jobs.lease``), so two beats never
    claim a domain twice, and a lost check task is retried after the lease.
    """
    now = now or timezone.now()
    lease = now + timedelta(seconds=settings.HERALD_DOMAIN_POLL_LEASE_SECONDS)
    claimed = jobs.lease(CHECKS, cutoff=now, until=lease, limit=limit)
    for pk in claimed:
        transaction.on_commit(lambda pk=pk: jobs.publish("domains.sender_domain_check", pk),
                              robust=True)
    return len(claimed)


# --- activate, deactivate, delete -------------------------------------------------------------

def sender_domain_activate(*, sender_domain: SenderDomain) -> SenderDomain:
    """Route the account's sends through the domain (it must be verified: else 409)."""
    if not sender_domain.verified:
        raise Conflict("domain_not_verified", f"{sender_domain.domain} is not verified yet: "
                       "publish its DNS records, then POST /comms/v1/api/comms/domain/validate.")
    return _set_enabled(sender_domain, True)


def sender_domain_deactivate(*, sender_domain: SenderDomain) -> SenderDomain:
    """Send from the platform default sender again (at once)."""
    return _set_enabled(sender_domain, False)


def _set_enabled(row: SenderDomain, enabled: bool) -> SenderDomain:
    with transaction.atomic():
        changed = SenderDomain.objects.filter(id=row.id).exclude(enabled=enabled).update(
            enabled=enabled, updated_at=timezone.now())
        if changed:
            _record(row, Event.ENABLED if enabled else Event.DISABLED, reason="requested")
    row.refresh_from_db()
    return row


def sender_domain_delete(*, sender_domain: SenderDomain) -> None:
    """Remove the domain at the provider, then here (a provider failure keeps both: 502).
    A domain the provider no longer knows is simply forgotten."""
    try:
        _ask(sender_domain.provider, lambda p: p.delete(sender_domain.provider_id))
    except ProviderFailed as exc:
        if not isinstance(exc.__cause__, DomainNotFoundAtProvider):
            raise
    SenderDomain.objects.filter(id=sender_domain.id).delete()


# --- brands ---------------------------------------------------------------------------------

def brand_ensure_default(*, account: Account, domain: str) -> Brand | None:
    """Give an account without brands a default one at ``domain`` (the platform sender's local
    part, the account's name), so a verified domain is used without further setup."""
    if Brand.objects.filter(account=account).exists():
        return None
    local = settings.HERALD_DEFAULT_FROM_EMAIL.partition("@")[0] or "no-reply"
    return Brand.objects.create(account=account, name=account.name[:100] or domain,
                                from_name=account.name[:200], from_email=f"{local}@{domain}",
                                is_default=True)


def brand_save(*, brand: Brand) -> Brand:
    """Create or update a brand; a brand made default takes over from the previous default."""
    brand.from_email = brand.from_email.strip()
    with transaction.atomic():
        if brand.is_default:
            Brand.objects.filter(account_id=brand.account_id, is_default=True).exclude(
                pk=brand.pk).update(is_default=False, updated_at=timezone.now())
        brand.save()
    return brand

