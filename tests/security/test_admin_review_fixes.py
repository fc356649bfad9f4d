"""Findings of the review of #18's admin: an owner cannot grant their own account what the
platform grants (verification, quotas, limits); a malformed id in a custom page's URL is a 404,
not a 500."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from accounts.models import Account, Membership
from tests.conftest import member_client


@pytest.fixture
def owner(keys) -> Client:
    return member_client(keys.account, "olive", Membership.Role.OWNER)


def _form(account: Account, **fields) -> dict:
    data = {"name": account.name, "verified_for_sending": "on", "contact_quota": "",
            "rate_limit_live": "100000", "rate_limit_test": "100000",
            "daily_quota_live": "", "daily_quota_test": "",
            "memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0",
            "api_keys-TOTAL_FORMS": "0", "api_keys-INITIAL_FORMS": "0", **fields}
    return data


def test_an_owner_cannot_verify_their_account_or_lift_its_limits(keys, owner):
    account = keys.account
    account.verified_for_sending = False
    account.save(update_fields=["verified_for_sending"])
    before = Account.objects.values().get(pk=account.pk)
    response = owner.post(reverse("admin:accounts_account_change", args=[account.pk]),
                          _form(account))
    assert response.status_code == 302, response.content.decode()[-3000:]
    after = Account.objects.values().get(pk=account.pk)
    for field in ("verified_for_sending", "contact_quota", "rate_limit_live", "rate_limit_test",
                  "daily_quota_live", "daily_quota_test"):
        assert after[field] == before[field], field


def test_a_superuser_grants_them(keys):
    root = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(root)
    account = keys.account
    account.verified_for_sending = False
    account.save(update_fields=["verified_for_sending"])
    form = client.get(reverse("admin:accounts_account_change", args=[account.pk])).context[
        "adminform"].form
    assert "verified_for_sending" in form.fields


@pytest.mark.parametrize("url", [
    "/admin/guests/attendee/not-a-uuid/fix-email/",
    "/admin/guests/attendee/not-a-uuid/send-ticket/",
    "/admin/templates/messagetemplate/x';--/send-test/",
])
def test_a_malformed_id_in_a_custom_page_is_a_404(owner, url):
    assert owner.post(url, {"email": "a@example.com", "to": "a@example.com"}).status_code == 404
