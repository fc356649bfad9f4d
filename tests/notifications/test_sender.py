"""Spec 004's ``{{sender.name}}`` / ``{{sender.email}}``: the display name and address the
email goes out from, with ``from`` or without (#17 item 7)."""

from typing import Any

import pytest
from rest_framework.test import APIClient

from domains.models import Brand, SenderDomain
from domains.services import brand_save

EVENT = {"identifier": "invoice.ready", "name": "Invoice ready", "channels": ["email"],
         "templates": [{"channel": "email", "subject": "From {{sender.name}}",
                        "body": "Reply to {{sender.email}}. {{sender.name | Us}}"}]}


@pytest.fixture
def send(keys, sendgrid, settings, django_capture_on_commit_callbacks):
    settings.HERALD_PROVIDER_TIMEOUT_SECONDS = 2
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {keys.live_key}")
    SenderDomain.objects.create(account=keys.account, domain="yourcompany.com", verified=True,
                                enabled=True, provider="dev")
    assert client.post("/v1/events", EVENT, format="json").status_code == 201

    def call(**body: Any) -> dict[str, Any]:
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post("/v1/send/invoice.ready", {"to": "ann@example.com", **body},
                                   format="json")
        assert response.status_code == 200 and response.json()["success"], response.content
        mail = sendgrid.messages[-1].body
        text = next(c["value"] for c in mail["content"] if c["type"] == "text/plain")
        return {"subject": mail["subject"], "text": text, "from": mail["from"]}
    return call


def brand(keys, name: str, from_name: str, from_email: str, *, default: bool = False) -> None:
    brand_save(brand=Brand(account=keys.account, name=name, from_name=from_name,
                           from_email=from_email, is_default=default))


def test_from_takes_the_name_of_the_brand_that_sends_from_that_address(keys, send):
    brand(keys, "Main", "Your Company", "hello@yourcompany.com", default=True)
    brand(keys, "Billing", "Your Company Billing", "billing@yourcompany.com")
    sent = send(**{"from": "Billing@YourCompany.com"})
    assert sent["subject"] == "From Your Company Billing"
    assert sent["text"] == "Reply to billing@yourcompany.com. Your Company Billing"
    assert sent["from"] == {"email": "billing@yourcompany.com",
                            "name": "Your Company Billing"}


def test_from_without_a_brand_of_its_own_takes_the_default_brands_name(keys, send):
    brand(keys, "Main", "Your Company", "hello@yourcompany.com", default=True)
    sent = send(**{"from": "billing@yourcompany.com"})
    assert sent["subject"] == "From Your Company"
    assert sent["from"] == {"email": "billing@yourcompany.com", "name": "Your Company"}


def test_from_without_any_brand_takes_the_accounts_name(keys, send):
    sent = send(**{"from": "billing@yourcompany.com"})
    assert sent["subject"] == "From Acme Events"
    assert sent["text"] == "Reply to billing@yourcompany.com. Acme Events"
    assert sent["from"] == {"email": "billing@yourcompany.com", "name": "Acme Events"}


def test_without_from_the_sender_is_the_one_the_email_goes_from(keys, send, settings):
    platform = send()
    assert platform["subject"] == f"From {settings.HERALD_DEFAULT_FROM_NAME}"
    assert platform["from"]["email"] == settings.HERALD_DEFAULT_FROM_EMAIL
    assert platform["text"].startswith(f"Reply to {settings.HERALD_DEFAULT_FROM_EMAIL}.")

    brand(keys, "Main", "Your Company", "hello@yourcompany.com", default=True)
    branded = send()
    assert branded["subject"] == "From Your Company"
    assert branded["text"] == "Reply to hello@yourcompany.com. Your Company"
    assert branded["from"] == {"email": "hello@yourcompany.com", "name": "Your Company"}
