"""Writes on accounts and keys."""

import hashlib
import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.db.models import Q

from accounts.models import Account, ApiKey, Membership


def key_hash(raw: str) -> str:
    """Keys carry 256 random bits, so one SHA-256 is as safe as a slow hash and costs ~1 µs."""
    return hashlib.sha256(raw.encode()).hexdigest()


def _new_secret(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"


@dataclass(frozen=True)
class AccountKeys:
    account: Account
    live_key: str
    test_key: str
    admin_key: str
    subscription_key: str

    def as_json(self) -> dict[str, str]:
        return {
            "accountId": str(self.account.id),
            "liveKey": self.live_key,
            "testKey": self.test_key,
            "adminKey": self.admin_key,
            "subscriptionKey": self.subscription_key,
        }


def api_key_create(*, account: Account, name: str, mode: str, is_admin: bool = False) -> str:
    """Create a key and return its raw value: the only time it exists outside a hash."""
    raw = _new_secret(mode)
    ApiKey.objects.create(
        account=account, name=name, mode=mode, is_admin=is_admin,
        prefix=raw[:12], key_hash=key_hash(raw),
    )
    return raw


def subscription_key_rotate(*, account: Account) -> str:
    raw = _new_secret("sub")
    account.subscription_key_hash = key_hash(raw)
    account.save(update_fields=["subscription_key_hash", "updated_at"])
    return raw


@transaction.atomic
def account_create(*, name: str, verified_for_sending: bool = True) -> AccountKeys:
    """A new account with a live, a test and an admin key and a subscription key."""
    account = Account.objects.create(name=name, verified_for_sending=verified_for_sending)
    return AccountKeys(
        account=account,
        live_key=api_key_create(account=account, name="live", mode=ApiKey.Mode.LIVE),
        test_key=api_key_create(account=account, name="test", mode=ApiKey.Mode.TEST),
        admin_key=api_key_create(
            account=account, name="admin", mode=ApiKey.Mode.LIVE, is_admin=True
        ),
        subscription_key=subscription_key_rotate(account=account),
    )


def membership_add(*, account: Account, username: str, role: str = Membership.Role.OWNER,
                   password: str | None = None, is_superuser: bool = False) -> Membership:
    """Give a (new or existing) staff user a role on the account."""
    User = get_user_model()
    user, created = User.objects.get_or_create(
        username=username, defaults={"is_staff": True, "is_superuser": is_superuser}
    )
    if created and password:
        user.set_password(password)
        user.save(update_fields=["password"])
    membership, _ = Membership.objects.get_or_create(
        user=user, account=account, defaults={"role": role}
    )
    return membership


@dataclass(frozen=True)
class LoginsUnlocked:
    unlocked: list[str]  # usernames whose per-user lock (failed logins) was lifted
    refused: list[str]  # locked members the caller may not unlock


def member_logins_unlock(*, account: Account, by: AbstractBaseUser) -> LoginsUnlocked:
    """Lift the per-username login lock (django-axes) of the account's members that ``by``
    may unlock: a superuser any member; an owner only a member whose every membership is in
    an account ``by`` owns, who is no superuser (else an owner of B could lift, again and
    again, the lock of an owner of A who is support in B, and guess her password without
    limit).

    Only the per-username count is forgotten: the member's attempt rows lose their username
    but keep their address, so each address's count (and lock) stays whole. A lockout of a
    client address (every user behind it) is the platform's: a superuser lifts it in the
    admin's Axes "Access attempts" list (or ``manage.py axes_reset_ip``)."""
    from axes.models import AccessAttempt

    members = get_user_model().objects.filter(membership__account=account)
    locked = set(AccessAttempt.objects.filter(
        username__in=members.values("username")).values_list("username", flat=True))
    if by.is_superuser:
        allowed = locked
    else:
        owned = Membership.objects.filter(user=by, role=Membership.Role.OWNER).values("account")
        # Members with a membership outside the caller's owned accounts, and superusers.
        protected = set(members.filter(
            Q(is_superuser=True) | Q(membership__in=Membership.objects.exclude(account__in=owned))
        ).values_list("username", flat=True))
        allowed = locked - protected
    for username in allowed:
        login_failures_forget(username=username)
    return LoginsUnlocked(unlocked=sorted(allowed), refused=sorted(locked - allowed))


def login_failures_forget(*, username: str, address: str | None = None) -> int:
    """Forget the failed admin logins (django-axes) counted against ``username``, keeping
    every address's count: the rows lose their username and keep their address, except the
    rows from ``address``, deleted (a successful login from there: its own typos). Returns
    the number of rows concerned.

    The one way Herald lifts a per-username count (an owner's unlock, a successful login):
    axes' own ``reset(username=…)`` and reset-on-success delete the rows outright, and with
    them the per-address count, so an attacker with a login of his own could clear his
    address's count between guesses at another user."""
    from axes.models import AccessAttempt

    rows = AccessAttempt.objects.filter(username=username)
    with transaction.atomic():
        deleted, _ = (rows.filter(ip_address=address).delete() if address is not None
                      else (0, None))
        return deleted + rows.update(username=None)
