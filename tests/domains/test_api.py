"""Spec 001 against the fake SendGrid server: endpoints, shapes, bad input, conflicts,
provider errors, activate/deactivate, delete, and the sender that sends then use."""

from collections.abc import Iterator

import pytest

from domains.selectors import sender_for
from tests.fakes.dns_server import local_dns_fixture, local_dns_server_fixture  # noqa: F401
from tests.fakes.sendgrid_api import FakeSendGrid

URL = "/comms/v1/api/comms/domain"
pytestmark = pytest.mark.usefixtures("local_dns")


@pytest.fixture
def sendgrid(settings) -> Iterator[FakeSendGrid]:
    """SendGrid is the email provider, so domains follow it (HERALD_DOMAIN_PROVIDER empty)."""
    with FakeSendGrid(api_key="SG.domains") as fake:
        settings.HERALD_EMAIL_PROVIDER = "sendgrid"
        settings.HERALD_DOMAIN_PROVIDER = ""
        settings.SENDGRID_API_KEY = fake.api_key
        settings.SENDGRID_API_HOST = fake.url
        yield fake


def create(api, domain: str = "mail.example.com"):
    response = api.post(URL, {"domain": domain})
    assert response.status_code == 200, response.content
    return response.json()


def test_post_creates_the_domain_with_three_records_in_the_spec_shape(api, sendgrid):
    body = create(api)

    stored = sendgrid.domains[0]
    assert body == {
        "id": stored["id"], "domain": "mail.example.com", "verified": False, "enabled": False,
        "dnsRecords": [{"type": r["type"], "host": r["host"], "data": r["data"], "valid": False}
                       for r in stored["dns"].values()],
    }
    assert len(body["dnsRecords"]) == 3
    assert {r["host"].split(".", 1)[0] for r in body["dnsRecords"][1:]} == {"s1", "s2"}
    assert api.get(URL).json() == body


def test_validate_fails_while_records_are_invalid_then_verifies_and_enables(api, sendgrid,
                                                                            local_dns):
    created = create(api)
    sendgrid.set_domain_valid("mail.example.com", {"mail_cname": True})

    partial = api.post(f"{URL}/validate")
    assert partial.status_code == 200
    assert partial.json()["verified"] is False
    assert [r["valid"] for r in partial.json()["dnsRecords"]] == [True, False, False]

    sendgrid.set_domain_valid("mail.example.com", True)
    done = api.post(f"{URL}/validate").json()
    assert done["verified"] is True and done["enabled"] is True
    assert all(r["valid"] for r in done["dnsRecords"])
    assert done["id"] == created["id"]
    assert api.get(URL).json() == done


def test_same_domain_again_answers_the_existing_one_and_another_is_a_conflict(api, sendgrid):
    first = create(api)
    assert create(api, "MAIL.example.com.") == first
    assert len(sendgrid.domains) == 1

    other = api.post(URL, {"domain": "news.example.com"})
    assert other.status_code == 409
    assert other.json()["error"] == "domain_exists"
    assert len(sendgrid.domains) == 1


def test_a_domain_of_another_account_is_409_and_stays_invisible(api, other_api, sendgrid):
    create(api)

    response = other_api.post(URL, {"domain": "Mail.Example.com"})
    assert response.status_code == 409
    assert response.json()["error"] == "domain_taken"
    assert set(response.json()) >= {"error", "message"}
    assert other_api.get(URL).status_code == 404
    assert other_api.post(f"{URL}/validate").status_code == 404
    assert len(sendgrid.domains) == 1


@pytest.mark.parametrize(("domain", "code"), [
    ("not a domain", "invalid_domain"),
    ("com", "bare_tld_not_allowed"),
    ("localhost", "bare_tld_not_allowed"),
    ("192.168.1.10", "ip_address_not_allowed"),
    ("2001:db8::1", "ip_address_not_allowed"),
    ("[2001:db8::1]", "ip_address_not_allowed"),
    ("a" * 64 + ".example.com", "label_too_long"),
    (".".join(["abcdefghi"] * 26) + ".com", "domain_too_long"),
    ("https://mail.example.com/", "invalid_domain"),
    ("someone@example.com", "invalid_domain"),
    ("*.example.com", "invalid_domain"),
    ("mail_server.example.com", "invalid_domain"),
    ("-mail.example.com", "invalid_domain"),
    ("mail..example.com", "invalid_domain"),
    ("example.123", "invalid_domain"),
    ("1.2.3", "invalid_domain"),
    ("xn--zz.example.com", "invalid_domain"),
    ("", "invalid_domain"),
    (".", "invalid_domain"),
])
def test_bad_domains_are_400_and_never_reach_the_provider(api, sendgrid, domain, code):
    response = api.post(URL, {"domain": domain})

    assert response.status_code == 400, response.content
    assert response.json()["error"] == code
    assert response.json()["message"]
    assert sendgrid.domain_requests == []
    assert api.get(URL).status_code == 404


@pytest.mark.parametrize("body", [{}, {"domain": 42}, {"domain": None},
                                  {"domain": "example.com", "extra": 1}, ["example.com"]])
def test_malformed_bodies_are_validation_errors(api, sendgrid, body):
    response = api.post(URL, body)
    assert response.status_code == 400
    assert response.json()["error"] == "validation_error"
    assert sendgrid.domain_requests == []


@pytest.mark.parametrize(("given", "stored"), [
    ("MAIL.EXAMPLE.COM.", "mail.example.com"),
    ("  Mail.Example.Com  ", "mail.example.com"),
    ("Bücher.Example", "xn--bcher-kva.example"),
    ("xn--bcher-kva.example", "xn--bcher-kva.example"),
])
def test_case_trailing_dots_and_idns_are_normalized(api, sendgrid, given, stored):
    assert create(api, given)["domain"] == stored
    assert sendgrid.domains[0]["domain"] == stored


@pytest.mark.parametrize(("status", "message"), [
    (400, "the domain is not allowed on this account"),
    (500, "internal server error"),
    (401, "The provided authorization grant is invalid"),
])
def test_provider_errors_are_502_with_its_status_and_nothing_stored(api, sendgrid, status,
                                                                    message):
    sendgrid.fail_next_domain(1, status, {"errors": [{"field": None, "message": message}]})

    response = api.post(URL, {"domain": "mail.example.com"})

    assert response.status_code == 502
    # The vendor's words stay in the server log (vendor_reason): status only.
    assert f"SendGrid {status}" in response.json()["message"]
    assert message not in response.json()["message"]
    assert response.json()["provider"] == "sendgrid"
    assert api.get(URL).status_code == 404
    assert create(api)["domain"] == "mail.example.com"  # nothing half-stored blocks a retry


def test_unreachable_provider_is_502(api, sendgrid, settings):
    settings.SENDGRID_API_HOST = "http://127.0.0.1:9"  # discard port: connection refused
    response = api.post(URL, {"domain": "mail.example.com"})
    assert response.status_code == 502
    assert "unreachable" in response.json()["message"]
    assert api.get(URL).status_code == 404


def test_validate_provider_error_is_502_and_keeps_the_domain(api, sendgrid):
    create(api)
    sendgrid.fail_next_domain(1, 503, {"errors": [{"message": "try later"}]})

    response = api.post(f"{URL}/validate")

    assert response.status_code == 502
    assert "SendGrid 503" in response.json()["message"]
    assert "try later" not in response.json()["message"]
    assert api.get(URL).json()["verified"] is False


def test_activate_needs_verification_and_both_toggle_at_once(api, sendgrid):
    create(api)
    refused = api.post(f"{URL}/activate")
    assert refused.status_code == 409
    assert refused.json()["error"] == "domain_not_verified"

    sendgrid.set_domain_valid("mail.example.com")
    api.post(f"{URL}/validate")
    account_id = api.keys.account.id
    assert sender_for(account_id=account_id) == ("tickets@mail.example.com", "Acme Events")

    off = api.post(f"{URL}/deactivate")
    assert off.status_code == 200 and off.json()["enabled"] is False
    assert off.json()["verified"] is True
    assert sender_for(account_id=account_id) is None

    on = api.post(f"{URL}/activate")
    assert on.status_code == 200 and on.json()["enabled"] is True
    assert sender_for(account_id=account_id) == ("tickets@mail.example.com", "Acme Events")


def test_delete_removes_it_here_and_at_sendgrid_to_start_over(api, sendgrid):
    create(api)

    response = api.client.delete(URL)

    assert response.status_code == 204
    assert sendgrid.domains == []
    assert api.get(URL).status_code == 404
    assert create(api, "news.example.com")["domain"] == "news.example.com"


def test_delete_keeps_everything_when_the_provider_fails(api, sendgrid):
    create(api)
    sendgrid.fail_next_domain(1, 500)

    response = api.client.delete(URL)

    assert response.status_code == 502
    assert api.get(URL).status_code == 200
    assert len(sendgrid.domains) == 1


def test_delete_of_a_domain_sendgrid_no_longer_knows_forgets_it(api, sendgrid):
    create(api)
    sendgrid.fail_next_domain(1, 404)
    assert api.client.delete(URL).status_code == 204
    assert api.get(URL).status_code == 404


def test_endpoints_without_a_domain_are_404(api, sendgrid):
    for method, path in [("get", URL), ("post", f"{URL}/validate"),
                         ("post", f"{URL}/activate"), ("post", f"{URL}/deactivate")]:
        response = getattr(api, method)(path)
        assert response.status_code == 404
        assert response.json()["error"] == "domain_not_found"
    assert api.client.delete(URL).status_code == 404


def test_both_keys_are_required(api, sendgrid):
    api.client.credentials(HTTP_AUTHORIZATION=f"Bearer {api.keys.live_key}")
    response = api.post(URL, {"domain": "mail.example.com"})
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert sendgrid.domain_requests == []


def test_dev_provider_walks_the_whole_flow_without_a_vendor(api, settings):
    settings.HERALD_EMAIL_PROVIDER = "outbox"
    settings.HERALD_DOMAIN_PROVIDER = ""

    created = create(api)
    assert isinstance(created["id"], int) and len(created["dnsRecords"]) == 3
    assert not any(r["valid"] for r in created["dnsRecords"])

    done = api.post(f"{URL}/validate").json()
    assert done["verified"] and done["enabled"]
    assert all(r["valid"] for r in done["dnsRecords"])
    assert api.client.delete(URL).status_code == 204


def test_unknown_domain_provider_is_a_502_naming_the_setting(api, settings):
    settings.HERALD_DOMAIN_PROVIDER = "carrier-pigeon"
    response = api.post(URL, {"domain": "mail.example.com"})
    assert response.status_code == 502
    assert response.json()["error"] == "provider_not_configured"
    assert api.get(URL).status_code == 404


def test_sends_use_the_verified_domain_and_fall_back_at_once(api, sendgrid, event_id,
                                                             template_id):
    from tests.conftest import guest

    def send_from() -> dict:
        before = len(sendgrid.messages)
        response = api.post("/checkin/v1/api/guest", guest(event_id, template_id))
        assert response.status_code == 200
        return sendgrid.messages[before].body["from"]

    assert send_from()["email"] == "tickets@herald.localhost"
    create(api)
    assert send_from()["email"] == "tickets@herald.localhost"  # not verified yet
    sendgrid.set_domain_valid("mail.example.com")
    api.post(f"{URL}/validate")
    assert send_from() == {"email": "tickets@mail.example.com", "name": "Acme Events"}
    api.post(f"{URL}/deactivate")
    assert send_from()["email"] == "tickets@herald.localhost"
