"""Spec 004's contact endpoints: list/search/paging, find by any identifier, create-or-upsert
(meta camelCased), PATCH, GDPR delete, push tokens, every error code, account scoping."""

import pytest
from rest_framework.test import APIClient

from comms.models import Delivery, DeliveryEvent, Suppression
from comms.services import delivery_owner
from contacts.models import Contact, PushToken
from contacts.selectors import contact_find
from contacts.services import contact_upsert, push_tokens_remove_dead
from tests.conftest import guest, make_client
from webhooks.models import Message
from webhooks.services import endpoint_create

EXPO = "ExponentPushToken[xxxxxxxxxxxxxxxxxxxxxx]"
FCM = "dQw4w9WgXcQ:APA91bH-abcdefghijklmnopqrstuvwxyz_0123456789"


def client_for(keys) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {keys.live_key}")
    return client


@pytest.fixture
def client(keys) -> APIClient:
    return client_for(keys)


@pytest.fixture
def other(db) -> APIClient:
    from accounts.services import account_create

    return client_for(account_create(name="Other Org"))


def post(client, body, status=201):
    response = client.post("/v1/contacts", body, format="json")
    assert response.status_code == status, response.content
    return response.json()


def error(response, status: int, code: str) -> str:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error", "code"} and body["code"] == code, body
    return body["error"]


# --- create / upsert --------------------------------------------------------------------


def test_create_returns_the_contact_json(client):
    body = post(client, {"email": "Jane@Example.COM", "phone": "+1 (415) 555-2671",
                         "name": "Jane", "externalId": "user-42", "avatar": "https://a.example/j.png",
                         "username": "jane", "slack": "U1234ABCD", "telegram": "123456789",
                         "discord": "123456789012345678"})
    assert body["success"] is True
    contact = body["contact"]
    assert set(contact) == {"uuid", "email", "phone", "name", "externalId", "avatar",
                            "username", "slack", "telegram", "discord", "meta", "pushTokens",
                            "createdAt", "updatedAt"}
    assert contact["email"] == "jane@example.com"
    assert contact["phone"] == "+14155552671"
    assert (contact["externalId"], contact["slack"], contact["meta"],
            contact["pushTokens"]) == ("user-42", "U1234ABCD", {}, [])
    assert contact["createdAt"].endswith("Z")


def test_upsert_by_any_identifier_updates_and_answers_200(client):
    first = post(client, {"email": "jane@example.com", "name": "Jane"})["contact"]
    again = post(client, {"email": "JANE@example.com", "phone": "+14155552671"}, status=200)
    assert again["contact"]["uuid"] == first["uuid"]
    assert again["contact"]["name"] == "Jane"  # not given: unchanged
    by_phone = post(client, {"phone": "+14155552671", "name": "Jane D."}, status=200)
    assert by_phone["contact"]["uuid"] == first["uuid"]
    assert by_phone["contact"]["email"] == "jane@example.com"
    assert Contact.objects.count() == 1


def test_unknown_fields_go_to_meta_camelcased_and_merge(client):
    post(client, {"email": "jane@example.com", "favorite_color": "blue",
                  "Loyalty-Tier": "gold", "plan": {"seats": 3}})
    contact = post(client, {"email": "jane@example.com", "favorite_color": "green",
                            "signup source": "ad", "meta": {"vip_level": 2}},
                   status=200)["contact"]
    assert contact["meta"] == {"favoriteColor": "green", "loyaltyTier": "gold",
                               "plan": {"seats": 3}, "signupSource": "ad", "vipLevel": 2}


def test_snake_case_spellings_of_known_fields_are_those_fields(client):
    contact = post(client, {"external_id": "u-1", "push_token": EXPO})["contact"]
    assert contact["externalId"] == "u-1" and contact["meta"] == {}
    assert contact["pushTokens"] == [EXPO]


def test_identifiers_of_two_contacts_conflict(client):
    post(client, {"email": "a@example.com"})
    post(client, {"phone": "+14155552671"})
    error(client.post("/v1/contacts", {"email": "a@example.com", "phone": "+14155552671"},
                      format="json"), 409, "CONFLICT")


@pytest.mark.parametrize(("body", "code", "field"), [
    ({"name": "No identifier"}, "VALIDATION_ERROR", "identifier"),
    ({}, "VALIDATION_ERROR", "identifier"),
    ({"email": None, "name": "x"}, "VALIDATION_ERROR", "identifier"),
    ({"email": "not-an-email"}, "INVALID_EMAIL", "email"),
    ({"phone": "4155552671"}, "INVALID_PHONE", "E.164"),
    ({"phone": "+1234"}, "INVALID_PHONE", "E.164"),
    ({"email": 42}, "VALIDATION_ERROR", "email"),
    ({"email": "a@example.com", "name": ["x"]}, "VALIDATION_ERROR", "name"),
    ({"email": "a@example.com", "name": "x" * 256}, "VALIDATION_ERROR", "name"),
    ({"externalId": "x" * 256}, "VALIDATION_ERROR", "externalId"),
    ({"email": "a@example.com", "avatar": "javascript:alert(1)"}, "VALIDATION_ERROR", "avatar"),
    ({"email": "a@example.com", "uuid": "x"}, "VALIDATION_ERROR", "uuid"),
    ({"email": "a@example.com", "meta": "x"}, "VALIDATION_ERROR", "meta"),
    ({"email": "a@example.com", "k" * 65: 1}, "VALIDATION_ERROR", "1 to 64"),
    ({"email": "a@example.com", "blob": "x" * 20000}, "VALIDATION_ERROR", "meta"),
    ({"email": "a@example.com", "note": "nul\x00"}, "VALIDATION_ERROR", "note"),
    ({"slack": "U1234ABCD", "pushToken": "nope"}, "VALIDATION_ERROR", "pushToken"),
])
def test_bad_bodies_are_400_and_store_nothing(client, body, code, field):
    message = error(client.post("/v1/contacts", body, format="json"), 400, code)
    assert field in message
    assert Contact.objects.count() == 0


def test_a_body_that_is_not_an_object_is_400(client):
    error(client.post("/v1/contacts", ["a@example.com"], format="json"), 400,
          "VALIDATION_ERROR")
    error(client.post("/v1/contacts", "{", content_type="application/json"), 400,
          "VALIDATION_ERROR")


def test_quota_is_402_on_create_only(client, keys):
    keys.account.contact_quota = 1
    keys.account.save()
    post(client, {"email": "a@example.com"})
    error(client.post("/v1/contacts", {"email": "b@example.com"}, format="json"), 402,
          "QUOTA_EXCEEDED")
    post(client, {"email": "a@example.com", "name": "A"}, status=200)  # updates still work
    assert Contact.objects.count() == 1


def test_unauthenticated_is_401(db):
    error(APIClient().get("/v1/contacts"), 401, "UNAUTHORIZED")


# --- find -------------------------------------------------------------------------------


@pytest.mark.parametrize("identifier", [
    "jane@example.com", "JANE@EXAMPLE.COM", "+14155552671", "user-42", "U1234ABCD"])
def test_find_by_every_identifier(client, identifier):
    uuid = post(client, {"email": "jane@example.com", "phone": "+14155552671",
                         "externalId": "user-42", "slack": "U1234ABCD"})["contact"]["uuid"]
    response = client.get(f"/v1/contacts/{identifier}")
    assert response.status_code == 200, response.content
    assert response.json()["contact"]["uuid"] == uuid
    assert client.get(f"/v1/contacts/{uuid}").json()["contact"]["uuid"] == uuid


def test_uuid_wins_over_an_external_id_that_looks_like_one(client):
    a = post(client, {"email": "a@example.com"})["contact"]["uuid"]
    post(client, {"email": "b@example.com", "externalId": a})
    assert client.get(f"/v1/contacts/{a}").json()["contact"]["email"] == "a@example.com"


def test_unknown_and_other_accounts_contacts_are_404(client, other, keys):
    uuid = post(client, {"email": "jane@example.com"})["contact"]["uuid"]
    for identifier in ["nobody@example.com", "00000000-0000-0000-0000-000000000000", "%20"]:
        error(client.get(f"/v1/contacts/{identifier}"), 404, "NOT_FOUND")
    for identifier in [uuid, "jane@example.com"]:
        error(other.get(f"/v1/contacts/{identifier}"), 404, "NOT_FOUND")
        error(other.patch(f"/v1/contacts/{identifier}", {"name": "x"}, format="json"), 404,
              "NOT_FOUND")
        error(other.delete(f"/v1/contacts/{identifier}"), 404, "NOT_FOUND")
        error(other.post(f"/v1/contacts/{identifier}/push-tokens", {"token": EXPO},
                         format="json"), 404, "NOT_FOUND")
        error(other.delete(f"/v1/contacts/{identifier}/push-tokens", {"token": EXPO},
                           format="json"), 404, "NOT_FOUND")
    assert contact_find(account=keys.account, identifier="Jane@example.com").email == (
        "jane@example.com")
    assert Contact.objects.get().name == ""


def test_the_same_email_in_two_accounts_is_two_contacts(client, other):
    a = post(client, {"email": "jane@example.com"})["contact"]["uuid"]
    b = post(other, {"email": "jane@example.com"})["contact"]["uuid"]
    assert a != b


# --- list -------------------------------------------------------------------------------


def test_list_pages_newest_first_with_total(client):
    uuids = [post(client, {"email": f"c{i}@example.com"})["contact"]["uuid"] for i in range(5)]
    body = client.get("/v1/contacts", {"limit": 2, "offset": 1}).json()
    assert body["success"] is True
    data = body["data"]
    assert (data["total"], data["limit"], data["offset"]) == (5, 2, 1)
    assert [c["uuid"] for c in data["contacts"]] == uuids[::-1][1:3]
    default = client.get("/v1/contacts").json()["data"]
    assert (default["limit"], default["offset"], len(default["contacts"])) == (50, 0, 5)


def test_list_searches_email_name_and_phone(client):
    post(client, {"email": "jane@acme.com", "name": "Jane Smith"})
    post(client, {"email": "bob@example.com", "name": "Bob", "phone": "+14155552671"})

    def found(search):
        return {c["email"] for c in client.get("/v1/contacts", {"search": search})
                .json()["data"]["contacts"]}

    assert found("ACME") == {"jane@acme.com"}
    assert found("smith") == {"jane@acme.com"}
    assert found("+1415") == {"bob@example.com"}
    assert found("nobody") == set()
    assert found("") == {"jane@acme.com", "bob@example.com"}


@pytest.mark.parametrize("params", [{"limit": 101}, {"limit": 0}, {"limit": "ten"},
                                    {"offset": -1}, {"search": "x" * 255}, {"sort": "name"}])
def test_bad_list_parameters_are_400(client, params):
    message = error(client.get("/v1/contacts", params), 400, "VALIDATION_ERROR")
    assert next(iter(params)) in message


def test_list_shows_only_the_callers_contacts(client, other):
    post(client, {"email": "mine@example.com"})
    post(other, {"email": "theirs@example.com"})
    data = client.get("/v1/contacts").json()["data"]
    assert [c["email"] for c in data["contacts"]] == ["mine@example.com"]
    assert data["total"] == 1


# --- patch ------------------------------------------------------------------------------


def test_patch_changes_only_given_fields(client):
    uuid = post(client, {"email": "jane@example.com", "name": "Jane", "color": "blue",
                         "size": "m"})["contact"]["uuid"]
    response = client.patch("/v1/contacts/jane@example.com",
                            {"phone": "+442071838750", "size": None, "shoe_size": 38},
                            format="json")
    assert response.status_code == 200, response.content
    contact = response.json()["contact"]
    assert contact["uuid"] == uuid
    assert (contact["name"], contact["email"], contact["phone"]) == (
        "Jane", "jane@example.com", "+442071838750")
    assert contact["meta"] == {"color": "blue", "shoeSize": 38}  # null removed "size"


def test_patch_errors(client):
    post(client, {"email": "a@example.com"})
    post(client, {"email": "b@example.com", "externalId": "b"})
    patch = client.patch
    error(patch("/v1/contacts/a@example.com", {"externalId": "b"}, format="json"), 409,
          "CONFLICT")
    error(patch("/v1/contacts/a@example.com", {"email": None}, format="json"), 400,
          "VALIDATION_ERROR")
    error(patch("/v1/contacts/a@example.com", {"email": "bad"}, format="json"), 400,
          "INVALID_EMAIL")
    error(patch("/v1/contacts/a@example.com", {"phone": "123"}, format="json"), 400,
          "INVALID_PHONE")
    error(patch("/v1/contacts/nobody@example.com", {"name": "x"}, format="json"), 404,
          "NOT_FOUND")
    assert Contact.objects.get(email="a@example.com").external_id is None


# --- delete (GDPR) ----------------------------------------------------------------------


def _delivered_to_contact(keys, capture, settings, email: str) -> Delivery:
    """A real delivery (sandbox send, its events, a webhook message) linked to the contact,
    as spec 004's sends will link theirs."""
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = True
    # The send is a test key's (sandbox): the endpoint opts in to its events.
    endpoint_create(account=keys.account, url="http://127.0.0.1:9/hook",
                    include_test_events=True)
    client = make_client(keys, test_mode=True)
    with capture(execute=True):
        from tests.conftest import TICKET

        # configuration (event, template): a live key
        event = make_client(keys).post("/checkin/v1/api/event", {"name": "Gala"},
                                       format="json").json()
        template = make_client(keys).post("/comms/v1/api/comms/template", TICKET,
                                          format="json").json()
        client.post("/checkin/v1/api/guest", guest(event["id"], template["id"], email=email),
                    format="json")
    delivery = Delivery.objects.get(recipient=email)
    contact = Contact.objects.get(email=email)
    Delivery.objects.filter(pk=delivery.pk).update(  # no spec-004 send yet
        **delivery_owner(contact))
    return delivery


def test_delete_is_hard_and_erases_personal_data_from_deliveries(
        client, keys, settings, django_capture_on_commit_callbacks):
    email = "bounce-jane@example.com"
    post(client, {"email": email, "pushToken": EXPO})
    delivery = _delivered_to_contact(keys, django_capture_on_commit_callbacks, settings, email)
    delivery.refresh_from_db()
    assert delivery.status == "bounced" and delivery.subject
    assert Message.objects.filter(payload__data__email=email).exists()

    response = client.delete(f"/v1/contacts/{email}")
    assert response.status_code == 200
    assert response.json() == {"success": True, "deleted": True}
    assert not Contact.objects.exists() and not PushToken.objects.exists()

    delivery.refresh_from_db()
    assert delivery.status == "bounced" and delivery.sent_at is not None  # statistics stay
    assert delivery.owner_id is None and delivery.owner_type_id is None
    assert (delivery.recipient, delivery.subject, delivery.html_body, delivery.text_body,
            delivery.context, delivery.correlation_id) == ("erased", "", "", "", None, None)
    assert email not in delivery.failure_reason
    events = DeliveryEvent.objects.filter(delivery=delivery)
    assert events.exists()
    assert all(e.detail == {} and e.correlation_id is None for e in events)
    payloads = [m.payload for m in Message.objects.all()]
    assert payloads and email not in str(payloads)
    # A bounced address stays suppressed after its contact is gone.
    assert Suppression.objects.filter(address=email).exists()
    error(client.get(f"/v1/contacts/{email}"), 404, "NOT_FOUND")


def test_delete_unknown_is_404(client):
    error(client.delete("/v1/contacts/nobody@example.com"), 404, "NOT_FOUND")


# --- push tokens ------------------------------------------------------------------------


def test_push_tokens_add_and_remove(client):
    post(client, {"email": "jane@example.com"})
    url = "/v1/contacts/jane@example.com/push-tokens"
    for token in (EXPO, FCM, EXPO):
        response = client.post(url, {"token": token}, format="json")
        assert response.status_code == 200, response.content
    assert response.json()["contact"]["pushTokens"] == [EXPO, FCM]
    assert dict(PushToken.objects.values_list("token", "provider")) == {EXPO: "expo",
                                                                         FCM: "fcm"}
    response = client.delete(url, {"token": EXPO}, format="json")
    assert response.status_code == 200
    assert response.json()["contact"]["pushTokens"] == [FCM]
    assert client.delete(url, {"token": EXPO}, format="json").status_code == 200  # idempotent


@pytest.mark.parametrize("body", [{"token": "short"}, {"token": 5}, {}, {"token": EXPO, "x": 1},
                                  {"token": "ExponentPushToken[]"}, {"token": "a b" * 10}])
def test_bad_push_tokens_are_400_naming_the_field(client, body):
    post(client, {"email": "jane@example.com"})
    response = client.post("/v1/contacts/jane@example.com/push-tokens", body, format="json")
    message = error(response, 400, "VALIDATION_ERROR")
    assert ("token" if "x" not in body else "x") in message
    assert not PushToken.objects.exists()


def test_push_token_of_unknown_contact_is_404(client):
    error(client.post("/v1/contacts/nobody@example.com/push-tokens", {"token": EXPO},
                      format="json"), 404, "NOT_FOUND")


def test_dead_tokens_leave_every_contact_of_that_account_only(keys, other):
    contact_upsert(account=keys.account, data={"email": "a@example.com", "pushToken": FCM})
    contact_upsert(account=keys.account, data={"email": "b@example.com", "pushToken": FCM})
    post(other, {"email": "c@example.com", "pushToken": FCM})
    assert push_tokens_remove_dead(account_id=keys.account.id, token=FCM) == 2
    assert PushToken.objects.count() == 1
    assert push_tokens_remove_dead(account_id=keys.account.id, token=FCM) == 0


def test_upsert_service_returns_created_flag(keys):
    contact, created = contact_upsert(account=keys.account, data={"email": "X@Example.com"})
    assert created and contact.email == "x@example.com"
    again, created = contact_upsert(account=keys.account, data={"email": "x@example.com"})
    assert again.pk == contact.pk and not created


# --- admin ------------------------------------------------------------------------------


def test_admin_searches_contacts_and_deletes_through_the_gdpr_service(client, keys):
    from django.test import Client
    from django.urls import reverse

    from accounts.services import membership_add

    post(client, {"email": "jane@example.com", "phone": "+14155552671", "pushToken": EXPO})
    contact = Contact.objects.get()
    delivery = Delivery.objects.create(account=keys.account, **delivery_owner(contact),
                                       recipient="jane@example.com", subject="Hi Jane",
                                       status="delivered")
    owner = membership_add(account=keys.account, username="owner", role="owner").user
    admin = Client()
    admin.force_login(owner)  # (client.login has no request for django-axes to count)
    changelist = admin.get(reverse("admin:contacts_contact_changelist"), {"q": "+1415"})
    assert list(changelist.context["cl"].queryset) == [contact]
    change = admin.get(reverse("admin:contacts_contact_change", args=[contact.pk]))
    assert change.status_code == 200 and EXPO in change.content.decode()
    response = admin.post(reverse("admin:contacts_contact_delete", args=[contact.pk]),
                          {"post": "yes"})
    assert response.status_code == 302
    delivery.refresh_from_db()
    assert (delivery.recipient, delivery.subject, delivery.status) == ("erased", "",
                                                                       "delivered")
    assert not Contact.objects.exists()


def test_deleting_a_contact_cancels_its_unsent_deliveries_even_in_flight(keys):
    from django.utils import timezone

    from comms import outcomes
    from comms.models import Status
    from contacts.services import contact_delete

    contact = Contact.objects.create(account=keys.account, email="gone@example.com")
    waiting = Delivery.objects.create(account=keys.account, **delivery_owner(contact),
                                      channel="email",
                                      recipient="gone@example.com", subject="s",
                                      text_body="t", template_version=0)
    held = Delivery.objects.create(account=keys.account, **delivery_owner(contact),
                                   channel="email",
                                   recipient="gone@example.com", subject="s", text_body="t",
                                   template_version=0, status=Status.SENDING,
                                   claimed_at=timezone.now(), attempts=1)
    contact_delete(contact=contact)
    # The worker holding ``held`` finishes its provider call afterwards: its write misses.
    outcomes.mark_sent([(held, outcomes.Content("s", "", "t", 0), "provider-id")], "outbox")
    for delivery in (waiting, held):
        delivery.refresh_from_db()
        assert (delivery.status, delivery.failure_type) == (Status.FAILED, "erased")
        assert (delivery.recipient, delivery.subject, delivery.text_body) == ("erased", "", "")
    assert not DeliveryEvent.objects.filter(name="comms.sent").exists()


def test_a_contact_deleted_outside_the_gdpr_service_leaves_no_delivery_pointing_at_it(
        client, keys, settings, django_capture_on_commit_callbacks):
    """The admin's bulk delete or an ORM delete is not an erasure: the deliveries stay, with
    their content, detached (as the former foreign key's SET NULL did)."""
    email = "kept-jane@example.com"
    post(client, {"email": email})
    delivery = _delivered_to_contact(keys, django_capture_on_commit_callbacks, settings, email)
    Contact.objects.filter(email=email).delete()
    delivery.refresh_from_db()
    assert (delivery.owner_type_id, delivery.owner_id, delivery.refs) == (None, None, None)
    assert delivery.recipient == email and delivery.subject  # not erased


def test_deleting_a_contact_leaves_the_deliveries_of_a_guest_with_the_same_id_alone(
        client, keys, django_capture_on_commit_callbacks):
    """Deliveries are found by owner type and id: a guest whose id happens to be a contact's
    uuid keeps its messages when the contact is erased or deleted."""
    contact = post(client, {"email": "jane@example.com"})["contact"]
    with django_capture_on_commit_callbacks(execute=True):
        from tests.conftest import TICKET

        live = make_client(keys)
        event = live.post("/checkin/v1/api/event", {"name": "Gala"}, format="json").json()
        template = live.post("/comms/v1/api/comms/template", TICKET, format="json").json()
        live.post("/checkin/v1/api/guest", guest(event["id"], template["id"], id=contact["uuid"],
                                                 email="guest@example.com"), format="json")
    delivery = Delivery.objects.get(recipient="guest@example.com")
    assert str(delivery.owner_id) == contact["uuid"]
    assert client.delete(f"/v1/contacts/{contact['uuid']}").status_code == 200
    delivery.refresh_from_db()
    assert str(delivery.owner_id) == contact["uuid"] and delivery.recipient == "guest@example.com"
    assert delivery.status != "failed"
