"""The admin of sender domains and brands: pages render, the records table, "Validate now"
(button and action), adding a domain through the provider, brands."""

from collections.abc import Iterator

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from domains.models import Brand, SenderDomain
from tests.fakes.dns_server import local_dns_fixture, local_dns_server_fixture  # noqa: F401
from tests.fakes.sendgrid_api import FakeSendGrid

URL = "/comms/v1/api/comms/domain"
pytestmark = pytest.mark.usefixtures("local_dns")


@pytest.fixture
def sendgrid(settings) -> Iterator[FakeSendGrid]:
    with FakeSendGrid(api_key="SG.admin") as fake:
        settings.HERALD_DOMAIN_PROVIDER = "sendgrid"
        settings.SENDGRID_API_KEY = fake.api_key
        settings.SENDGRID_API_HOST = fake.url
        yield fake


@pytest.fixture
def staff(db) -> Client:
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw-12345678")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def domain(api, sendgrid, local_dns) -> SenderDomain:
    assert api.post(URL, {"domain": "mail.example.com"}).status_code == 200
    row = SenderDomain.objects.get()
    local_dns.add(row.dns_records[0]["host"], "CNAME", row.dns_records[0]["data"])
    return row


def test_changelist_and_change_page_show_records_flags_and_the_button(staff, domain, api):
    api.post(f"{URL}/validate")

    listing = staff.get("/admin/domains/senderdomain/")
    assert listing.status_code == 200
    assert "mail.example.com" in listing.content.decode()

    page = staff.get(f"/admin/domains/senderdomain/{domain.pk}/change/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "Validate now" in html and f"/admin/domains/senderdomain/{domain.pk}/validate/" in html
    assert 'class="herald-dns-records"' in html
    for record in domain.dns_records:
        assert record["host"] in html and record["data"] in html
    assert html.count("<td>✔</td>") == 1  # the one record published in the local DNS
    assert "Not verified by the provider yet" in html  # last result
    assert "Published (Herald's DNS lookup)" in html


def test_validate_now_button_verifies(staff, domain, sendgrid):
    sendgrid.set_domain_valid("mail.example.com")
    assert staff.get(f"/admin/domains/senderdomain/{domain.pk}/validate/").status_code == 405

    response = staff.post(f"/admin/domains/senderdomain/{domain.pk}/validate/", follow=True)

    assert response.status_code == 200
    assert "Checked mail.example.com: Verified by SendGrid; mail is sent from it" in (
        response.content.decode())
    domain.refresh_from_db()
    assert domain.verified and domain.enabled and domain.last_checked_at


def test_validate_now_shows_provider_errors(staff, domain, sendgrid):
    sendgrid.fail_next_domain(1, 500, {"errors": [{"message": "SendGrid is sad"}]})
    response = staff.post(f"/admin/domains/senderdomain/{domain.pk}/validate/", follow=True)
    assert "SendGrid 500" in response.content.decode()
    assert "SendGrid is sad" not in response.content.decode()


def test_actions_validate_activate_deactivate(staff, domain, sendgrid):
    def act(action: str):
        return staff.post("/admin/domains/senderdomain/", {
            "action": action, "_selected_action": [domain.pk]}, follow=True)

    assert "not verified yet" in act("activate").content.decode()
    sendgrid.set_domain_valid("mail.example.com")
    assert act("validate_now").status_code == 200
    domain.refresh_from_db()
    assert domain.enabled
    act("deactivate")
    domain.refresh_from_db()
    assert not domain.enabled and domain.verified
    act("activate")
    domain.refresh_from_db()
    assert domain.enabled


def test_adding_a_domain_goes_through_the_provider(staff, sendgrid, keys):
    assert staff.get("/admin/domains/senderdomain/add/").status_code == 200

    bad = staff.post("/admin/domains/senderdomain/add/",
                     {"account": keys.account.pk, "domain": "not a domain"})
    assert bad.status_code == 200 and "is not a domain name" in bad.content.decode()
    assert sendgrid.domain_requests == []

    sendgrid.fail_next_domain(1, 400, {"errors": [{"message": "quota reached"}]})
    failed = staff.post("/admin/domains/senderdomain/add/",
                        {"account": keys.account.pk, "domain": "mail.example.com"})
    assert "SendGrid 400" in failed.content.decode()  # the vendor's words: server log only
    assert "quota reached" not in failed.content.decode()
    assert not SenderDomain.objects.exists()

    done = staff.post("/admin/domains/senderdomain/add/",
                      {"account": keys.account.pk, "domain": "Mail.Example.com"})
    assert done.status_code == 302
    row = SenderDomain.objects.get()
    assert row.domain == "mail.example.com" and len(row.dns_records) == 3
    assert sendgrid.domains[0]["id"] == int(row.provider_id)


def test_brand_pages_and_a_new_default_takes_over(staff, domain, keys):
    original = Brand.objects.get(account=keys.account)
    assert original.is_default and original.from_email == "tickets@mail.example.com"
    assert staff.get("/admin/domains/brand/").status_code == 200
    assert staff.get(f"/admin/domains/brand/{original.pk}/change/").status_code == 200
    assert staff.get("/admin/domains/brand/add/").status_code == 200

    response = staff.post("/admin/domains/brand/add/", {
        "account": keys.account.pk, "name": "Gala", "from_name": "Spring Gala",
        "from_email": "gala@mail.example.com", "is_default": "on", "templates": "{}"})

    assert response.status_code == 302, response.content.decode()[:2000]
    original.refresh_from_db()
    assert not original.is_default
    assert Brand.objects.get(name="Gala").is_default
