"""An object never changes account in the admin (review of #18): a member of two accounts
could otherwise move one account's event or guests into the other, after which the other
account's members read the guests' histories and mail them."""

import uuid

import pytest
from django.contrib import admin
from django.test import Client, RequestFactory
from django.urls import reverse

from accounts.admin_base import AccountScopedAdmin
from accounts.services import membership_add
from guests.models import Attendee, Event
from guests.services import attendee_create, event_create


@pytest.fixture
def two(keys, other_api):
    other = other_api.keys.account
    user = membership_add(account=keys.account, username="mo", role="staff").user
    membership_add(account=other, username="mo", role="owner")
    client = Client()
    client.force_login(user)
    return keys.account, other, client, user


def test_an_events_account_cannot_be_changed(two):
    a, b, client, _ = two
    event = event_create(account=a, name="Gala")
    response = client.post(reverse("admin:guests_event_change", args=[event.pk]), {
        "account": b.pk, "name": "Gala", "venue": "", "time_zone": "UTC"})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Event.objects.get(pk=event.pk).account_id == a.pk


def test_a_guests_account_cannot_be_changed(two):
    a, b, client, _ = two
    event = event_create(account=a, name="Gala")
    theirs = event_create(account=b, name="Rival")
    guest = attendee_create(account=a, mode="live", id=uuid.uuid4(), event_id=event.pk,
                            email="ann@example.com", first_name="Ann", last_name="Lee").attendee
    client.post(reverse("admin:guests_attendee_change", args=[guest.pk]), {
        "account": b.pk, "event": theirs.pk, "first_name": "Ann", "last_name": "Lee",
        "email": "ann@example.com", "correlation_id": ""})
    guest = Attendee.objects.get(pk=guest.pk)
    assert guest.account_id == a.pk and guest.event_id == event.pk


def test_every_account_scoped_form_shows_the_account_read_only_on_change(two):
    *_, user = two
    request = RequestFactory().get("/admin/")
    request.user = user
    for model, model_admin in admin.site._registry.items():
        if isinstance(model_admin, AccountScopedAdmin) and model_admin.account_path == "account":
            assert "account" in model_admin.get_readonly_fields(request, model()), model
