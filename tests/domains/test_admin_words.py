"""A sender domain's page never contradicts its DNS table (#18 findings 9-10): development mode
says verification is simulated instead of "verified and enabled" beside NXDOMAIN answers; a
domain a real provider verified says when Herald's own lookup does not see its records yet;
messages start with a word, not a capitalised domain; "DNS checked at"; the records table
scrolls inside its own box."""

import re
from collections.abc import Iterator
from html import unescape

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Membership
from domains.models import SenderDomain
from tests.conftest import member_client
from tests.fakes.dns_server import local_dns_fixture, local_dns_server_fixture  # noqa: F401
from tests.fakes.sendgrid_api import FakeSendGrid

pytestmark = pytest.mark.usefixtures("local_dns")


@pytest.fixture
def owner(keys) -> Client:
    return member_client(keys.account, "olive", Membership.Role.OWNER)


def _text(html: str) -> str:
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def _messages(html: str) -> list[str]:
    """The texts of the page's messages (unfold's message list)."""
    block = re.search(r'<ul class="flex flex-col gap-4 mb-6">(.*?)</ul>', html, re.S)
    return [_text(li) for li in re.findall(r"<li.*?</li>", block.group(1), re.S)] if block else []


def _add_and_validate(owner: Client, keys) -> tuple[SenderDomain, str]:
    added = owner.post(reverse("admin:domains_senderdomain_add"),
                       {"account": keys.account.pk, "domain": "mail.example.com"})
    assert added.status_code == 302
    row = SenderDomain.objects.get()
    page = owner.post(reverse("admin:domains_senderdomain_validate", args=[row.pk]), follow=True)
    return row, page.content.decode()


def test_development_mode_says_verification_is_simulated(owner, keys, settings):
    settings.HERALD_DOMAIN_PROVIDER = "dev"
    row, html = _add_and_validate(owner, keys)
    row.refresh_from_db()
    assert row.verified and row.enabled and row.provider == "dev"
    assert not any(check["found"] for check in row.dns_checks)  # NXDOMAIN, every record

    *_, message = _messages(html)  # after "The sender domain … was added"
    assert message.startswith("Checked mail.example.com in development mode: verification "
                              "is simulated")
    text = _text(html)
    assert "Development mode: verification is simulated" in text
    assert "verified and enabled" not in text
    assert "Valid (simulated)" in text and "No such name in the DNS" in text
    assert "DNS checked at" in text and "Dns checked at" not in text
    assert "Provider" not in text and '"providerId"' not in html  # no raw JSON history
    # The records table scrolls inside its own box, below the fields at full width.
    assert re.search(r'<div class="herald-scroll" style="[^"]*overflow-x:auto[^"]*">\s*'
                     r'<style>.*?</style>\s*<table class="herald-dns-records"', html, re.S)


@pytest.fixture
def sendgrid(settings) -> Iterator[FakeSendGrid]:
    with FakeSendGrid(api_key="SG.words") as fake:
        settings.HERALD_DOMAIN_PROVIDER = "sendgrid"
        settings.SENDGRID_API_KEY = fake.api_key
        settings.SENDGRID_API_HOST = fake.url
        yield fake


def test_a_verified_domain_says_when_its_records_are_not_seen_yet(owner, keys, sendgrid,
                                                                  local_dns):
    owner.post(reverse("admin:domains_senderdomain_add"),
               {"account": keys.account.pk, "domain": "mail.example.com"})
    row = SenderDomain.objects.get()
    local_dns.add(row.dns_records[0]["host"], "CNAME", row.dns_records[0]["data"])
    sendgrid.set_domain_valid("mail.example.com")
    page = owner.post(reverse("admin:domains_senderdomain_validate", args=[row.pk]), follow=True)
    text = _text(page.content.decode())
    assert "Verified by SendGrid; mail is sent from it (Herald's own DNS lookup does not see " \
           "2 of 3 records yet" in text
    assert "Valid (SendGrid)" in text


def test_messages_start_with_a_word_not_the_domain(owner, keys, settings):
    settings.HERALD_DOMAIN_PROVIDER = "dev"
    row, _ = _add_and_validate(owner, keys)
    changelist = reverse("admin:domains_senderdomain_changelist")
    for action in ("deactivate", "activate", "validate_now"):
        page = owner.post(changelist, {"action": action, "_selected_action": [row.pk]},
                          follow=True)
        [message] = _messages(page.content.decode())
        assert message.split()[0] in {"Activated", "Deactivated", "Checked"}, message
