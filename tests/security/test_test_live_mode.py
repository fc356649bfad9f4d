"""Test keys are a rehearsal, never a path into live (issue 15, item 4).

An attacker (or a careless CI job) holds one account's test key; the account's live key is
used by its real integration. Each path where the two meet: idempotency keys, guest ids,
the 422 rule, suppressions, bulk send eligibility, configuration, histories.
"""

import uuid

import pytest
from rest_framework.test import APIClient

from comms.models import Delivery, Suppression
from guests.models import Attendee, BulkSend
from templates.models import MessageTemplate
from tests.comms.factories import suppression_add
from tests.conftest import TICKET, bulk_send_done, guest
from webhooks.models import Endpoint

GUEST = "/checkin/v1/api/guest"
SEND = "/comms/v1/api/comms/send"


@pytest.fixture(autouse=True)
def instant_sandbox(settings):
    settings.HERALD_SANDBOX_DELAY_SECONDS = 0


def _bearer(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def _send(api, attendee_id, template_id, **headers):
    return api.post(SEND, {"attendeeId": attendee_id, "templateId": template_id,
                           "correlationId": "c-1"}, **headers)


def _guest(api, event_id, template_id=None, **fields):
    body = guest(event_id, template_id, **fields)
    response = api.post(GUEST, body)
    assert response.status_code == 200, response.content
    return body, response.json()["attendeeInvitationId"]


# --- idempotency --------------------------------------------------------------------------

def test_a_live_send_with_a_test_keys_idempotency_key_is_sent_for_real(
        api, sandbox_api, event_id, template_id):
    body, _ = _guest(api, event_id)
    rehearsal = _send(sandbox_api, body["id"], template_id, HTTP_IDEMPOTENCY_KEY="k-1")
    live = _send(api, body["id"], template_id, HTTP_IDEMPOTENCY_KEY="k-1")
    assert rehearsal.status_code == live.status_code == 200
    sandbox_id = rehearsal.json()["attendeeInvitationId"]
    live_id = live.json()["attendeeInvitationId"]
    assert live_id != sandbox_id
    assert Delivery.objects.get(id=live_id).mode == "live"
    # Each mode's retry gets its own first send back.
    assert _send(api, body["id"], template_id, HTTP_IDEMPOTENCY_KEY="k-1").json()[
        "attendeeInvitationId"] == live_id
    assert _send(sandbox_api, body["id"], template_id, HTTP_IDEMPOTENCY_KEY="k-1").json()[
        "attendeeInvitationId"] == sandbox_id
    assert Delivery.objects.filter(mode="live").count() == 1


def test_a_live_guest_create_after_a_rehearsal_with_the_same_id_gets_its_own_send(
        api, sandbox_api, event_id, template_id):
    body = guest(event_id, template_id)
    sandbox_id = sandbox_api.post(GUEST, body).json()["attendeeInvitationId"]
    live = api.post(GUEST, body)
    assert live.status_code == 200, live.content
    live_id = live.json()["attendeeInvitationId"]
    assert live_id and live_id != sandbox_id
    assert Delivery.objects.get(id=live_id).mode == "live"
    # Retries in either mode answer that mode's first send; nothing more is queued.
    assert api.post(GUEST, body).json()["attendeeInvitationId"] == live_id
    assert sandbox_api.post(GUEST, body).json()["attendeeInvitationId"] == sandbox_id
    assert api.get(f"{GUEST}/{body['id']}").json()["attendeeInvitationId"] == live_id
    assert sandbox_api.get(f"{GUEST}/{body['id']}").json()["attendeeInvitationId"] == sandbox_id
    assert Delivery.objects.filter(owner_id=body["id"]).count() == 2


def test_a_live_request_wins_over_a_test_keys_rehearsal_of_its_guest_id(
        api, sandbox_api, event_id, template_id):
    """A test key names the guest id first, with its own address, name and event: the live
    request's fields replace them and its ticket goes out with them, to its address."""
    other = api.post("/checkin/v1/api/event", {"name": "Attacker Event"}).json()["id"]
    body = guest(event_id, template_id, email="jane@example.com", correlationId="live-1")
    rehearsal = sandbox_api.post(GUEST, {**body, "firstName": "Mallory", "lastName": "X",
                                         "eventId": other, "email": "attacker@evil.example",
                                         "correlationId": "evil"})
    sandbox_id = rehearsal.json()["attendeeInvitationId"]
    live = api.post(GUEST, body)
    assert live.status_code == 200, live.content
    got = live.json()
    assert (got["firstName"], got["lastName"], got["email"], got["eventId"],
            got["correlationId"]) == ("Jane", "Smith", "jane@example.com", event_id, "live-1")
    attendee = Attendee.objects.get(id=body["id"])
    assert (attendee.mode, attendee.first_name, str(attendee.event_id)) == (
        "live", "Jane", event_id)
    sent = Delivery.objects.get(id=got["attendeeInvitationId"])
    assert (sent.mode, sent.recipient, sent.status) == ("live", "jane@example.com", "sent")
    assert "Jane" in sent.html_body and "Mallory" not in sent.html_body
    # The rehearsal stays as sandbox history; retries answer the live send.
    assert Delivery.objects.get(id=sandbox_id).recipient == "attacker@evil.example"
    assert api.post(GUEST, body).json()["attendeeInvitationId"] == got["attendeeInvitationId"]
    assert Delivery.objects.filter(mode="live").count() == 1


def test_a_test_key_never_changes_a_live_guest(api, sandbox_api, event_id, template_id):
    body, _ = _guest(api, event_id, template_id)
    other = api.post("/checkin/v1/api/event", {"name": "Elsewhere"}).json()["id"]
    other_email = sandbox_api.post(GUEST, {**body, "email": "attacker@evil.example"})
    assert other_email.status_code == 409
    assert other_email.json()["error"] == "id_conflict"
    same_email = sandbox_api.post(GUEST, {**body, "firstName": "Mallory", "eventId": other})
    assert same_email.status_code == 200
    assert same_email.json()["firstName"] == "Jane"
    rehearsal = Delivery.objects.get(id=same_email.json()["attendeeInvitationId"])
    assert (rehearsal.mode, rehearsal.recipient) == ("test", "jane@example.com")
    attendee = Attendee.objects.get(id=body["id"])
    assert (attendee.mode, attendee.first_name, attendee.email, str(attendee.event_id)) == (
        "live", "Jane", "jane@example.com", event_id)


# --- the 422 rule, suppressions, bulk send ------------------------------------------------

def test_a_sandbox_bounce_neither_422s_nor_suppresses_the_live_send(
        api, sandbox_api, event_id, template_id):
    body, first = _guest(sandbox_api, event_id, template_id, email="bounce@example.com")
    assert Delivery.objects.get(id=first).status == "bounced"
    assert Suppression.objects.get().mode == "test"
    assert _send(sandbox_api, body["id"], template_id).status_code == 422
    # The guest is the test key's rehearsal: a live send for it finds no guest ...
    assert _send(api, body["id"], template_id).status_code == 404
    assert not Delivery.objects.filter(mode="live").exists()
    # ... until a live request creates it; then neither its create nor a resend is held back.
    created = api.post(GUEST, body)
    assert created.status_code == 200, created.content
    assert Delivery.objects.get(id=created.json()["attendeeInvitationId"]).status == "sent"
    live = _send(api, body["id"], template_id)
    assert live.status_code == 200, live.content
    assert Delivery.objects.get(id=live.json()["attendeeInvitationId"]).status == "sent"


def test_a_test_send_honours_a_live_suppression(sandbox_api, keys, event_id, template_id):
    suppression_add(account_id=keys.account.id, address="gone@example.com", reason="bounced")
    _, delivery_id = _guest(sandbox_api, event_id, template_id, email="gone@example.com")
    assert Delivery.objects.get(id=delivery_id).status == "suppressed"


def test_a_test_key_lifts_sandbox_suppressions_only(api, sandbox_api, keys, event_id,
                                                    template_id):
    suppression_add(account_id=keys.account.id, address="gone@example.com", reason="bounced")
    path = "/comms/v1/api/comms/suppression/gone@example.com"
    refused = sandbox_api._call("delete", path, {"reason": "test key"})
    assert refused.status_code == 403
    assert refused.json()["error"] == "forbidden"
    assert Suppression.objects.get().removed_at is None
    _guest(sandbox_api, event_id, template_id, email="bounce@example.com")
    lifted = sandbox_api._call("delete", "/comms/v1/api/comms/suppression/bounce@example.com",
                               {"reason": "rehearsal over"})
    assert lifted.status_code == 200
    assert Suppression.objects.get(mode="test").removed_at is not None
    listed = {row["email"] for row in api.get("/comms/v1/api/comms/suppression").json()["items"]}
    assert listed == {"gone@example.com"}


def test_a_live_bulk_send_after_a_sandbox_rehearsal_skips_nobody(
        keys, event_id, template_id, api, sandbox_api, django_capture_on_commit_callbacks):
    for n in range(3):  # live guests, rehearsed with by a test key: the sandbox bounces
        body, _ = _guest(api, event_id, email=f"bounce-{n}@example.com")
        assert _send(sandbox_api, body["id"], template_id).status_code == 200
    assert Delivery.objects.filter(status="bounced", mode="test").count() == 3
    job = bulk_send_done(event_id, template_id, audience=BulkSend.Audience.ALL, mode="live",
                         capture=django_capture_on_commit_callbacks)
    assert (job.queued, job.skipped_failed, job.skipped_suppressed) == (3, 0, 0)
    assert Delivery.objects.filter(mode="live").count() == 3


def test_a_live_bulk_send_leaves_out_the_guests_a_test_key_added(
        api, sandbox_api, keys, event_id, template_id, django_capture_on_commit_callbacks):
    from guests.models import Event

    _guest(api, event_id, email="real@example.com")
    for n in range(3):
        _guest(sandbox_api, event_id, email=f"spam-target{n}@victim.example")
    event = Event.objects.get(id=event_id)
    jobs = {mode: bulk_send_done(event_id, template_id, audience=BulkSend.Audience.ALL,
                                 mode=mode, capture=django_capture_on_commit_callbacks)
            for mode in ("live", "test")}
    assert (jobs["live"].total, jobs["live"].queued) == (1, 1)
    assert list(Delivery.objects.filter(mode="live").values_list("recipient", flat=True)) == [
        "real@example.com"]
    assert (jobs["test"].total, jobs["test"].queued) == (4, 4)  # a rehearsal sees them all
    from guests.bulk import bulk_send_audience

    for audience in BulkSend.Audience.values:
        assert bulk_send_audience(event=event, template=jobs["live"].template,
                                  audience=audience).filter(mode="test").count() == 0


# --- configuration: test keys read, never change -------------------------------------------

WEBHOOK = {"url": "https://93.184.215.14/webhooks/herald", "enabled_events": ["delivery.sent"]}


def _webhook(keys) -> str:
    response = _bearer(keys.live_key).post("/v1/webhooks", WEBHOOK, format="json")
    assert response.status_code == 201, response.content
    return response.json()["webhook"]["uuid"]


def _brand(keys) -> str:
    response = _bearer(keys.live_key).post("/v1/Brand/", {
        "Name": "Photo Co", "FromName": "Photo Co", "FromEmail": "hello@photo.example"},
        format="json")
    assert response.status_code == 201, response.content
    return response.json()["Brand"]["BrandId"]


EVENT_BODY = {"identifier": "ping", "channels": ["email"],
              "templates": [{"channel": "email", "subject": "Ping", "body": "Hi"}]}


def _comms(api, method, path, body):
    response = api._call(method, path, body)
    return response, response.json()


def _v4(keys, method, path, body):
    response = getattr(_bearer(keys.test_key), method)(path, body, format="json")
    return response, response.json()


@pytest.mark.parametrize("case", [
    "template put", "template post", "event post", "event put", "webhook post",
    "webhook patch", "webhook delete", "webhook rotate", "webhook test", "webhook resend",
    "brand post", "brand put", "domain post", "domain validate", "domain activate",
    "domain deactivate", "domain delete", "checkin event post",
])
def test_a_test_key_cannot_change_configuration(case, keys, api, sandbox_api, template_id):
    if case.startswith("event put") or case.startswith("webhook"):
        _bearer(keys.live_key).post("/v1/events", EVENT_BODY, format="json")
    hook = _webhook(keys) if case.startswith("webhook") and case != "webhook post" else None
    brand = _brand(keys) if case == "brand put" else None
    shape = "comms"
    if case == "template put":
        response, body = _comms(sandbox_api, "put", f"/comms/v1/api/comms/template/{template_id}",
                                {**TICKET, "subject": "Pwned"})
    elif case == "template post":
        response, body = _comms(sandbox_api, "post", "/comms/v1/api/comms/template", TICKET)
    elif case == "checkin event post":
        response, body = _comms(sandbox_api, "post", "/checkin/v1/api/event", {"name": "Pwned"})
    elif case.startswith("domain"):
        action = case.split()[1]
        path = "/comms/v1/api/comms/domain" + (f"/{action}" if action in (
            "validate", "activate", "deactivate") else "")
        response, body = _comms(sandbox_api, "delete" if action == "delete" else "post", path,
                                {"domain": "mail.example.com"})
    elif case.startswith("brand"):
        shape = "v003"
        path = "/v1/Brand/" + (brand or "")
        response, body = _v4(keys, "put" if brand else "post", path, {"Name": "Pwned"})
    else:
        shape = "v004"
        path = {"event post": "/v1/events", "event put": "/v1/events/ping",
                "webhook post": "/v1/webhooks", "webhook patch": f"/v1/webhooks/{hook}",
                "webhook delete": f"/v1/webhooks/{hook}",
                "webhook rotate": f"/v1/webhooks/{hook}/rotate-secret",
                "webhook test": f"/v1/webhooks/{hook}/test",
                "webhook resend": f"/v1/webhooks/{hook}/resend-failed"}[case]
        method = {"event put": "put", "webhook patch": "patch",
                  "webhook delete": "delete"}.get(case, "post")
        data = {"webhook post": WEBHOOK, "webhook patch": {"url": "https://evil.example/"},
                "event post": {**EVENT_BODY, "identifier": "pwned"},
                "event put": {**EVENT_BODY, "name": "Pwned"}}.get(case, {})
        response, body = _v4(keys, method, path, data)
    assert response.status_code == 403, (case, response.content)
    assert {"comms": body.get("error") == "forbidden", "v004": body.get("code") == "FORBIDDEN",
            "v003": "read-only" in body.get("Error", "")}[shape], body
    # Nothing changed.
    assert MessageTemplate.objects.filter(subject="Pwned").count() == 0
    assert MessageTemplate.objects.filter(account=keys.account).count() == (
        1 + (1 if case.startswith("event put") or case.startswith("webhook") else 0))
    assert Endpoint.objects.filter(url=WEBHOOK["url"], deleted_at__isnull=True).count() == (
        1 if hook else 0)
    from domains.models import SenderDomain
    from guests.models import Event

    assert not SenderDomain.objects.exists()
    assert not Event.objects.filter(name="Pwned").exists()


def test_a_test_key_reads_live_configuration(keys, api, sandbox_api, template_id):
    _webhook(keys)
    brand = _brand(keys)
    _bearer(keys.live_key).post("/v1/events", EVENT_BODY, format="json")
    test = _bearer(keys.test_key)
    assert sandbox_api.get(f"/comms/v1/api/comms/template/{template_id}").status_code == 200
    assert test.get("/v1/events/ping").status_code == 200
    assert test.get("/v1/webhooks").json()["webhook"]["url"] == WEBHOOK["url"]
    assert test.get(f"/v1/Brand/{brand}").status_code == 200
    live_event = api.post("/checkin/v1/api/event", {"name": "Gala"}).json()["id"]
    events = sandbox_api.get("/checkin/v1/api/event").json()["items"]
    assert live_event in [e["id"] for e in events]
    assert sandbox_api.get(f"/checkin/v1/api/event/{live_event}").status_code == 200


# --- histories ------------------------------------------------------------------------------

def test_histories_show_each_mode_its_own_sends(api, sandbox_api, keys, event_id,
                                                template_id):
    _, sandbox_id = _guest(sandbox_api, event_id, template_id)
    _, live_id = _guest(api, event_id, template_id)
    live, test = _bearer(keys.live_key), _bearer(keys.test_key)
    assert [d["uuid"] for d in live.get("/v1/deliveries").json()["data"]["deliveries"]] == [
        live_id]
    assert [d["uuid"] for d in test.get("/v1/deliveries").json()["data"]["deliveries"]] == [
        sandbox_id]
    assert live.get(f"/v1/deliveries/{sandbox_id}/trace").status_code == 404
    assert test.get(f"/v1/deliveries/{live_id}/trace").status_code == 404
    assert api.get(f"{SEND}/{sandbox_id}").status_code == 404
    assert sandbox_api.get(f"{SEND}/{live_id}").status_code == 404
    assert api.get(f"{SEND}/{live_id}").status_code == 200


def test_email_history_shows_each_mode_its_own_emails(keys):
    brand = _brand(keys)
    message = {"To": "jane@example.com", "Type": "token", "BrandId": brand, "Token": "abcde",
               "NumPhotos": 10}
    live, test = _bearer(keys.live_key), _bearer(keys.test_key)
    live_id = live.post("/v1/Email/", {"Messages": [message]}, format="json").json()[
        "Results"][0]["MessageId"]
    test_id = test.post("/v1/Email/", {"Messages": [message]}, format="json").json()[
        "Results"][0]["MessageId"]
    assert [e["MessageId"] for e in live.get("/v1/Email/").json()["Emails"]] == [live_id]
    assert [e["MessageId"] for e in test.get("/v1/Email/").json()["Emails"]] == [test_id]


def test_guest_ids_remember_the_mode_that_created_them(api, sandbox_api, event_id):
    body, _ = _guest(sandbox_api, event_id)
    assert Attendee.objects.get(id=body["id"]).mode == "test"


def test_the_schema_documents_the_403_of_configuration_changes(api):
    paths = api.client.get("/api/schema/?format=json").json()["paths"]
    refused = paths["/comms/v1/api/comms/template/{template_id}"]["put"]["responses"]["403"]
    assert "read-only" in refused["description"]
    assert "403" in paths["/v1/webhooks/{webhook_uuid}"]["patch"]["responses"]
    assert "403" in paths["/v1/Brand/"]["post"]["responses"]
    assert "403" not in paths["/v1/webhooks"]["get"]["responses"]


def test_supports_resend_ticket_resends_the_live_send_not_a_later_rehearsal(
        api, sandbox_api, keys, event_id, template_id):
    from django.test import Client
    from django.urls import reverse

    from accounts.services import membership_add

    body, live_id = _guest(api, event_id, template_id)
    _send(sandbox_api, body["id"], template_id)  # a rehearsal after the real send
    owner = membership_add(account=keys.account, username="olive", role="owner").user
    client = Client()
    client.force_login(owner)
    with api.capture(execute=True):
        response = client.post(reverse("admin:guests_attendee_changelist"), {
            "action": "resend_attendees", "_selected_action": [body["id"]]})
    assert response.status_code == 302
    newest = Delivery.objects.filter(owner_id=body["id"]).latest("created_at")
    assert newest.id != uuid.UUID(live_id) and newest.mode == "live"
    assert Delivery.objects.filter(owner_id=body["id"], mode="live").count() == 2


# --- contacts: a test key reads them, never writes one ---------------------------------------

def test_a_test_key_cannot_change_or_delete_an_existing_contact(keys):
    from contacts.models import Contact, PushToken

    live, test = _bearer(keys.live_key), _bearer(keys.test_key)
    live.post("/v1/contacts", {"email": "jane@example.com", "externalId": "u1", "name": "Jane"},
              format="json")
    attempts = [
        test.patch("/v1/contacts/u1", {"email": "attacker@evil.example"}, format="json"),
        test.delete("/v1/contacts/u1"),
        test.post("/v1/contacts/u1/push-tokens", {"token": "ExponentPushToken[evil]"},
                  format="json"),
        test.post("/v1/contacts", {"externalId": "u1", "email": "attacker@evil.example"},
                  format="json"),
    ]
    assert [r.status_code for r in attempts] == [403, 403, 403, 403]
    assert all(r.json()["code"] == "FORBIDDEN" for r in attempts)
    contact = Contact.objects.get()
    assert (contact.email, contact.name) == ("jane@example.com", "Jane")
    assert not PushToken.objects.exists()
    assert test.get("/v1/contacts/u1").json()["contact"]["email"] == "jane@example.com"


def test_a_test_key_cannot_plant_a_contact_a_live_send_then_reaches(keys):
    """External ids are the customer's user ids (predictable): a contact a test key could
    create first would take the live app's later sends, and fill the live contact quota."""
    from accounts.models import Account
    from contacts.models import Contact, PushToken

    Account.objects.filter(pk=keys.account.pk).update(contact_quota=1)
    live, test = _bearer(keys.live_key), _bearer(keys.test_key)
    planted = test.post("/v1/contacts", {"externalId": "user-42",
                                         "email": "attacker@evil.example",
                                         "pushToken": "ExponentPushToken[attacker-device]"},
                        format="json")
    assert planted.status_code == 403
    assert planted.json()["code"] == "FORBIDDEN"
    assert not Contact.objects.exists() and not PushToken.objects.exists()
    assert test.get("/v1/contacts").json()["data"]["total"] == 0
    real = live.post("/v1/contacts", {"externalId": "user-42", "email": "real@example.com"},
                     format="json")
    assert real.status_code == 201, real.content  # the quota of one is still free
    live.post("/v1/events", EVENT_BODY, format="json")
    assert live.post("/v1/send/ping", {"to": "user-42"}, format="json").status_code == 200
    assert list(Delivery.objects.values_list("recipient", "mode")) == [
        ("real@example.com", "live")]


def test_a_test_send_to_unknown_recipients_writes_no_contact(keys):
    from accounts.models import Account
    from comms import channels
    from contacts.models import Contact

    Account.objects.filter(pk=keys.account.pk).update(contact_quota=2)
    channels.integration_save(account=keys.account, provider="expo", config={},
                              credentials={})
    live, test = _bearer(keys.live_key), _bearer(keys.test_key)
    live.post("/v1/events", {**EVENT_BODY, "channels": ["email", "push"], "templates": [
        *EVENT_BODY["templates"], {"channel": "push", "subject": "Ping", "body": "Hi"}]},
        format="json")
    response = test.post("/v1/send/ping", {"to": [
        "x0@example.com", "x1@example.com", "X1@example.com", "+14155552671",
        {"externalId": "user-7", "email": "x2@example.com",
         "pushToken": "ExponentPushToken[rehearsal]"}]}, format="json")
    assert response.status_code == 200, response.content
    assert not Contact.objects.exists()
    sent = set(Delivery.objects.values_list("recipient", "channel", "mode", "owner_id"))
    assert sent == {("x0@example.com", "email", "test", None),
                    ("x1@example.com", "email", "test", None),
                    ("x2@example.com", "email", "test", None),
                    ("ExponentPushToken[rehearsal]", "push", "test", None)}
    # The live contact quota is untouched: the live integration can still add its two.
    for n in range(2):
        created = live.post("/v1/send/ping", {"to": f"real{n}@example.com"}, format="json")
        assert created.status_code == 200, created.content
    assert Contact.objects.count() == 2


def test_a_test_send_rehearses_with_a_contact_as_it_is(keys):
    from contacts.models import Contact

    live, test = _bearer(keys.live_key), _bearer(keys.test_key)
    live.post("/v1/events", EVENT_BODY, format="json")
    live.post("/v1/contacts", {"email": "jane@example.com", "externalId": "u1", "name": "Jane"},
              format="json")
    response = test.post("/v1/send/ping", {"to": {"externalId": "u1", "name": "Mallory",
                                                  "email": "attacker@evil.example"}},
                         format="json")
    assert response.status_code == 200, response.content
    contact = Contact.objects.get()
    assert (contact.email, contact.name) == ("jane@example.com", "Jane")
    assert Delivery.objects.get().recipient == "jane@example.com"


@pytest.mark.django_db(transaction=True)
def test_concurrent_live_requests_after_a_rehearsal_make_one_live_send(keys):
    import threading

    from django.db import connection

    from tests.conftest import make_client

    live = make_client(keys)
    event_id = live.post("/checkin/v1/api/event", {"name": "Race"}, format="json").json()["id"]
    template_id = live.post("/comms/v1/api/comms/template", TICKET, format="json").json()["id"]
    body = guest(event_id, template_id)
    make_client(keys, test_mode=True).post(GUEST, body, format="json")
    barrier, results = threading.Barrier(10), [None] * 10

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = make_client(keys).post(GUEST, body, format="json")
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.status_code for r in results] == [200] * 10
    [live_id] = {r.json()["attendeeInvitationId"] for r in results}
    assert Delivery.objects.filter(owner_id=body["id"], mode="live").get().id == uuid.UUID(
        live_id)


# --- webhooks: a rehearsal's events never reach a receiver as live --------------------------

def _endpoint(keys, settings, **fields) -> None:
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = True
    response = _bearer(keys.live_key).post("/v1/webhooks", {
        "url": "http://127.0.0.1:9/hook", **fields}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["webhook"]["include_test_events"] is fields.get(
        "include_test_events", False)


def test_sandbox_events_reach_only_endpoints_that_include_test_events(
        keys, api, sandbox_api, event_id, template_id, settings, monkeypatch):
    from webhooks.models import Message
    from webhooks.tasks import deliver_message

    monkeypatch.setattr(deliver_message, "apply_async", lambda args, countdown=None: None)
    _endpoint(keys, settings)
    sandbox_api.post(GUEST, guest(event_id, template_id, email="bounce@example.com",
                                  correlationId="order-2026-0042"))
    assert Delivery.objects.get().status == "bounced"
    assert not Message.objects.exists()  # the customer's receiver never hears of it
    _, live_id = _guest(api, event_id, template_id, email="jane@example.com")
    live = {m.event_type: m.payload for m in Message.objects.all()}
    assert live["comms.sent"]["data"]["mode"] == "live"
    assert live["comms.sent"]["data"]["attendeeInvitationId"] == live_id
    assert live["delivery.sent"]["delivery"]["mode"] == "live"


def test_an_endpoint_that_includes_test_events_gets_them_marked_test(
        keys, api, sandbox_api, event_id, template_id, settings, monkeypatch):
    from webhooks.models import Message
    from webhooks.tasks import deliver_message

    monkeypatch.setattr(deliver_message, "apply_async", lambda args, countdown=None: None)
    _endpoint(keys, settings, include_test_events=True)
    _guest(sandbox_api, event_id, template_id, email="bounce@example.com")
    payloads = {m.event_type: m.payload for m in Message.objects.all()}
    assert payloads["comms.bounced"]["data"]["mode"] == "test"
    assert payloads["delivery.bounced"]["delivery"]["mode"] == "test"
    # Only a live key turns it on or off.
    uuid_ = Endpoint.objects.get().id
    off = {"include_test_events": False}
    refused = _bearer(keys.test_key).patch(f"/v1/webhooks/{uuid_}", off, format="json")
    assert refused.status_code == 403
    assert Endpoint.objects.get().include_test_events is True
    changed = _bearer(keys.live_key).patch(f"/v1/webhooks/{uuid_}", off, format="json")
    assert changed.json()["webhook"]["include_test_events"] is False
    bad = _bearer(keys.live_key).patch(f"/v1/webhooks/{uuid_}", {"include_test_events": "yes"},
                                       format="json")
    assert bad.status_code == 400
