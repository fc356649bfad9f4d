"""Reads on sender domains and brands."""

from domains.models import Brand, SenderDomain
from domains.names import email_domain


def sender_domain_for(*, account_id) -> SenderDomain | None:
    """The account's sender domain (at most one), or None."""
    return SenderDomain.objects.filter(account_id=account_id).first()


def sender_for(*, account_id) -> tuple[str, str] | None:
    """``(from_email, from_name)`` of the account's default brand while its address is at the
    account's verified and enabled domain; None means "use the platform default sender".

    Two indexed queries per call; dispatch calls it once per send.
    """
    domain = (SenderDomain.objects.filter(account_id=account_id, verified=True, enabled=True)
              .values_list("domain", flat=True).first())
    if domain is None:
        return None
    brand = Brand.objects.filter(account_id=account_id, is_default=True).first()
    if brand is None or email_domain(brand.from_email) != domain:
        return None
    return brand.from_email, brand.from_name


def brand_usable(*, brand: Brand) -> bool:
    """Whether sends would use this brand now (default, at a verified and enabled domain)."""
    return brand.is_default and sender_for(account_id=brand.account_id) == (
        brand.from_email, brand.from_name)
