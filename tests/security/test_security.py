"""Nobody let in: tenancy, secrets, forged callbacks, SSRF and the template sandbox.

- every endpoint of every family, called with another account's ids, answers 404 and
  changes nothing of that account (the list of endpoints comes from the OpenAPI schema, so
  a new endpoint with an id in its path is covered or makes this suite fail);
- API keys, subscription keys and webhook signing secrets never show after their creation:
  not in API responses, webhook bodies, the admin's pages, nor the logs;
- forged or stale SendGrid and SNS callbacks are refused and change nothing;
- webhook URLs reaching non-public addresses are refused (WEBHOOKS_ALLOW_PRIVATE_URLS off),
  and a receiver's redirect is never followed;
- template sandbox escapes and resource bombs fail safely and quickly.
"""

import json
import logging
import subprocess
import sys
import textwrap
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.services import api_key_create
from comms.callbacks import sns
from comms.models import CallbackBatch, Delivery, Suppression
from comms.services import delivery_owner
from contacts.models import Contact, PushToken
from guests.models import ReminderRule
from templates.events import TemplateIn, event_save
from templates.models import NotificationEvent
from tests.comms.factories import suppression_add
from tests.conftest import TICKET, guest
from tests.fakes.sendgrid_signing import SendGridSigner, dumps, sendgrid_event
from tests.fakes.sns_signing import SnsSigner
from tests.fakes.webhook_receiver import Answer, WebhookReceiver
from webhooks import services as webhook_services
from webhooks.models import Endpoint, Message

PUBLIC_HOOK = "https://93.184.215.14/hooks/herald"  # an IP literal: no DNS, never contacted


def _schema_operations(client) -> list[tuple[str, str, list[str]]]:
    """(method, path, path parameter names) of every operation the API documents."""
    schema = client.get("/api/schema/?format=json").json()
    operations = []
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                names = [p["name"] for p in operation.get("parameters", [])
                         if p["in"] == "path"]
                operations.append((method, path, names))
    return operations


def _call(api, method: str, path: str, body: Any = None):
    client = api.client
    if path.startswith("/api/v1/communications"):  # spec 002: admin keys only
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {api.keys.admin_key}")
    with api.capture(execute=True):
        return getattr(client, method)(path, body, format="json")


# --- one account's ids, used by another --------------------------------------------------

@pytest.fixture
def victim(other_api) -> dict[str, Any]:
    """Another account with one row of every kind an endpoint takes an id of."""
    event = other_api.post("/checkin/v1/api/event", {"name": "Their Gala"}).json()
    template = other_api.post("/comms/v1/api/comms/template", TICKET).json()
    created = other_api.post("/checkin/v1/api/guest", guest(
        event["id"], template["id"], email="victim@their-org.example", firstName="Vicky"))
    assert created.status_code == 200, created.content
    attendee = created.json()
    account = other_api.keys.account
    suppression_add(account_id=account.id, address="suppressed@their-org.example",
                    reason="bounced", detail="550 5.1.1 No such user")
    endpoint, secret = webhook_services.endpoint_create(account=account, url=PUBLIC_HOOK,
                                                        description="theirs")
    message = webhook_services.endpoint_send_test(endpoint=endpoint)  # never sent: no commit
    brand = other_api.client.post("/v1/Brand/", {"Name": "Theirs",
                                                 "FromEmail": "x@their-org.example"},
                                  format="json").json()["Brand"]
    contact = Contact.objects.create(account=account, email="victim@their-org.example",
                                     external_id="their-user-1", name="Vicky")
    PushToken.objects.create(contact=contact, token="ExponentPushToken[their-device]",
                             provider="expo")
    for identifier in ("their.event", "their.sendable"):
        event_save(account=account, identifier=identifier, name="Their event",
                   channels=["email"], templates=[TemplateIn("email", "en", "Hi", "Hello", "")])
    rule = ReminderRule.objects.create(account=account, event_id=event["id"],
                                       template_id=template["id"], offset_minutes=-1440)
    inapp = Delivery.objects.create(account=account, **delivery_owner(contact), channel="inapp",
                                    recipient="their-user-1", status="delivered",
                                    subject="Their note", text_body="x", template_version=0)
    return {
        "path": {
            "identifier": "victim@their-org.example", "event_identifier": "their.event",
            # The PUT below creates the caller's own "their.event": sends use another name.
            "event": "their.sendable", "channel": "email",
            "delivery_uuid": attendee["attendeeInvitationId"], "inapp_id": str(inapp.id),
            "event_id": event["id"], "template_id": template["id"],
            "attendee_id": attendee["id"], "invitation_id": attendee["attendeeInvitationId"],
            "email": "suppressed@their-org.example", "webhook_uuid": str(endpoint.id),
            "message_id": message.webhook_id, "BrandId": brand["BrandId"],
            # Their deliveries by the ids the cancels take (spec 002's is content given as is).
            "communication_id": str(inapp.id), "MessageId": attendee["attendeeInvitationId"],
            "reminder_id": str(rule.id),
        },
        "endpoint": endpoint, "secret": secret, "message": message,
        "markers": ["victim@their-org.example", "suppressed@their-org.example", "Their Gala",
                    "Vicky", event["id"], template["id"], attendee["id"],
                    attendee["attendeeInvitationId"], str(endpoint.id), message.webhook_id,
                    brand["BrandId"]],
    }


# Bodies that pass validation, so a 404 cannot hide behind a 400.
VALID_BODIES = {
    ("put", "/comms/v1/api/comms/template/{template_id}"): {**TICKET, "name": "pwned"},
    ("patch", "/v1/webhooks/{webhook_uuid}"): {"description": "pwned", "is_active": False},
    ("delete", "/comms/v1/api/comms/suppression/{email}"): {"reason": "pwned"},
    ("post", "/v1/webhooks/{webhook_uuid}/resend-failed"): {"since": "2000-01-01T00:00:00Z"},
    ("post", "/v1/send/{event}"): {"to": "someone@example.com"},
    ("post", "/v1/send/{event}/{channel}"): {"to": "someone@example.com"},
    ("put", "/v1/events/{event_identifier}"): {
        "channels": ["email"], "templates": [{"channel": "email", "subject": "pwned",
                                              "body": "pwned"}]},
    ("patch", "/v1/contacts/{identifier}"): {"name": "pwned"},
    ("post", "/v1/contacts/{identifier}/push-tokens"): {"token": "ExponentPushToken[pwned]"},
    ("delete", "/v1/contacts/{identifier}/push-tokens"): {
        "token": "ExponentPushToken[their-device]"},
}


CREATE_OR_REPLACE = {("put", "/v1/events/{event_identifier}")}


def _victim_unchanged(victim: dict[str, Any]) -> None:
    endpoint = Endpoint.objects.get(id=victim["endpoint"].id)
    assert endpoint.deleted_at is None and endpoint.is_active
    assert endpoint.description == "theirs"
    assert endpoint.secret_encrypted == victim["endpoint"].secret_encrypted
    assert not endpoint.previous_secret_encrypted
    message = Message.objects.get(id=victim["message"].id)
    assert message.attempts == victim["message"].attempts
    assert Suppression.objects.get(address="suppressed@their-org.example").removed_at is None
    from templates.models import MessageTemplate

    template = MessageTemplate.objects.get(id=victim["path"]["template_id"])
    assert (template.name, template.version) == ("Ticket", 1)
    assert Delivery.objects.filter(account=victim["endpoint"].account).count() == 2
    contact = Contact.objects.get(email="victim@their-org.example")
    assert contact.name == "Vicky"
    assert list(contact.push_tokens.values_list("token", flat=True)) == [
        "ExponentPushToken[their-device]"]
    for event in NotificationEvent.objects.filter(account=victim["endpoint"].account):
        assert event.templates.get().subject == "Hi"
    inapp = Delivery.objects.get(channel="inapp", account=victim["endpoint"].account)
    assert inapp.status == "delivered"


def test_every_endpoint_with_another_accounts_ids_is_404(api, victim):
    operations = [op for op in _schema_operations(api.client) if op[2]]
    assert len(operations) >= 12
    for method, path, names in operations:
        unknown = [name for name in names if name not in victim["path"]]
        assert not unknown, f"{method.upper()} {path}: no victim row for {unknown}: add one"
        url = path
        for name in names:
            url = url.replace("{" + name + "}", victim["path"][name])
        response = _call(api, method, url, VALID_BODIES.get((method, path)))
        # PUT of an event creates the caller's own event of that name (names are per account).
        expected = 201 if (method, path) in CREATE_OR_REPLACE else 404
        assert response.status_code == expected, (method, url, response.status_code,
                                                   response.content[:300])
        body = response.content.decode()
        assert not any(marker in body for marker in victim["markers"]), (method, url, body)
    _victim_unchanged(victim)


def test_ids_of_another_account_in_bodies_are_404(api, event_id, template_id, victim):
    ids = victim["path"]
    cases = [
        ("/checkin/v1/api/guest", guest(ids["event_id"])),
        ("/checkin/v1/api/guest", guest(ids["event_id"], ids["template_id"])),
        ("/checkin/v1/api/guest", guest(event_id, ids["template_id"])),
        ("/comms/v1/api/comms/send", {"attendeeId": ids["attendee_id"],
                                      "templateId": template_id}),
        ("/comms/v1/api/comms/send", {"attendeeId": ids["attendee_id"],
                                      "templateId": ids["template_id"]}),
    ]
    mine = api.post("/checkin/v1/api/guest", guest(event_id)).json()["id"]
    cases.append(("/comms/v1/api/comms/send", {"attendeeId": mine,
                                               "templateId": ids["template_id"]}))
    for path, body in cases:
        response = api.post(path, body)
        assert response.status_code == 404, (path, body, response.content)
        assert not any(m in response.content.decode() for m in victim["markers"])
    # Another account's message id under one's own endpoint is not found either.
    own, _ = webhook_services.endpoint_create(account=api.keys.account, url=PUBLIC_HOOK)
    response = _call(api, "post", f"/v1/webhooks/{own.id}/messages/{ids['message_id']}/resend")
    assert response.status_code == 404, response.content
    _victim_unchanged(victim)


def test_reusing_another_accounts_guest_id_reveals_nothing(api, event_id, victim):
    """The attendee id is the caller's idempotency key: taken by another account, it is a 409
    (documented), which must not return or change anything of that account."""
    response = api.post("/checkin/v1/api/guest", guest(event_id, id=victim["path"]["attendee_id"]))
    assert response.status_code in (404, 409), response.content
    assert not any(m in response.content.decode() for m in victim["markers"])
    _victim_unchanged(victim)


def test_lists_never_show_another_accounts_rows(api, event_id, template_id, victim):
    operations = [op for op in _schema_operations(api.client)
                  if op[0] == "get" and not op[2]]
    assert len(operations) >= 4
    for _, path, _ in operations:
        for query in ("", "?email=suppressed@their-org.example"):
            response = _call(api, "get", path + query)
            # 400: a family that refuses unknown query parameters (003's strict lists).
            assert response.status_code in (200, 400, 404), (path, response.content[:300])
            body = response.content.decode()
            assert not any(marker in body for marker in victim["markers"]), (path, body)


# --- secrets never show after creation ------------------------------------------------------

def _secret_parts(*raw: str) -> list[str]:
    """Each secret, and its part past the 12-character prefix the admin lists keys by."""
    parts = []
    for value in raw:
        parts += [value, value[12:]]
        if value.startswith("whsec_"):
            parts.append(value.removeprefix("whsec_"))
    return parts


def _assert_clean(where: str, text: str, secrets: list[str]) -> None:
    for secret in secrets:
        assert secret not in text, f"a secret ({secret[:8]}…) shows in {where}"


@pytest.fixture
def superuser_client(db) -> Client:
    user = get_user_model().objects.create_superuser("root", "root@herald.localhost", "pw-123456")
    client = Client()
    client.force_login(user)
    return client


def test_keys_and_secrets_never_show_after_creation(api, sandbox_api, keys, event_id,
                                                    template_id, settings, caplog,
                                                    superuser_client):
    caplog.set_level(logging.DEBUG)
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = True
    settings.HERALD_SANDBOX_DELAY_SECONDS = 0
    responses: list[tuple[str, str]] = []
    with WebhookReceiver() as receiver:
        created = _call(api, "post", "/v1/webhooks",
                        {"url": receiver.url, "include_test_events": True})
        assert created.status_code == 201, created.content
        webhook = created.json()["webhook"]
        first_secret = webhook["signing_secret"]
        assert first_secret.startswith("whsec_") and first_secret in created.content.decode()
        rotated = _call(api, "post", f"/v1/webhooks/{webhook['uuid']}/rotate-secret")
        second_secret = rotated.json()["webhook"]["signing_secret"]
        receiver.secret = second_secret
        revoked = api_key_create(account=keys.account, name="old", mode="live")
        from accounts.models import ApiKey

        ApiKey.objects.filter(name="old").update(revoked_at=datetime.now(tz=UTC))
        secrets = _secret_parts(keys.live_key, keys.test_key, keys.admin_key,
                                keys.subscription_key, first_secret, second_secret, revoked)

        # The flows: sends with both keys (the sandbox plays the lifecycle), a bounce, a
        # two-step send, a test webhook, failed authentications of every kind.
        for client, email in ((api, "jane@example.com"), (sandbox_api, "bounce@example.com"),
                              (sandbox_api, "spam@example.com")):
            response = client.post("/checkin/v1/api/guest",
                                   guest(event_id, template_id, email=email))
            responses.append(("POST guest", response.content.decode()))
        attendee = json.loads(responses[0][1])["id"]
        response = api.post("/comms/v1/api/comms/send",
                            {"attendeeId": attendee, "templateId": template_id},
                            HTTP_IDEMPOTENCY_KEY="retry-1")
        responses.append(("POST send", response.content.decode()))
        response = _call(api, "post", f"/v1/webhooks/{webhook['uuid']}/test")
        responses.append(("POST webhook test", response.content.decode()))
        for path, headers in (
                ("/checkin/v1/api/event", {"HTTP_AUTHORIZATION": f"Bearer {revoked}"}),
                ("/v1/webhooks", {"HTTP_AUTHORIZATION": f"Bearer {revoked}"}),
                ("/v1/webhooks", {"HTTP_AUTHORIZATION": f"Bearer {keys.live_key}x"}),
                ("/checkin/v1/api/event", {"HTTP_AUTHORIZATION": keys.live_key}),
                ("/checkin/v1/api/event", {"HTTP_AUTHORIZATION": f"Bearer {keys.live_key}",
                                           "HTTP_OCP_APIM_SUBSCRIPTION_KEY": keys.test_key})):
            response = APIClient().get(path, **headers)
            assert response.status_code == 401, (path, response.content)
            responses.append((f"401 {path}", response.content.decode()))
        webhook_bodies = [r.body.decode() + json.dumps(r.headers) for r in receiver.received]
        assert len(receiver.verified) >= 5

    # Every read the API offers, with the account's real ids.
    ids = {"event_id": event_id, "template_id": template_id, "attendee_id": attendee,
           "invitation_id": json.loads(responses[0][1])["attendeeInvitationId"],
           "email": "bounce@example.com", "webhook_uuid": webhook["uuid"],
           "message_id": Message.objects.first().webhook_id}
    for method, path, names in _schema_operations(api.client):
        if method != "get" or not set(names) <= set(ids):
            continue  # ids this flow has no row for are covered by the 404 test
        for name in names:
            path = path.replace("{" + name + "}", ids[name])
        response = _call(api, "get", path)
        responses.append((f"GET {path}", response.content.decode()))
    for where, text in [*responses, *(("webhook", b) for b in webhook_bodies)]:
        _assert_clean(where, text, secrets)

    pages = 0
    for model, model_admin in admin.site._registry.items():
        info = f"{model._meta.app_label}_{model._meta.model_name}"
        page = superuser_client.get(reverse(f"admin:{info}_changelist"))
        assert page.status_code == 200, info
        _assert_clean(f"admin {info} list", page.content.decode(), secrets)
        for pk in model_admin.get_queryset(page.wsgi_request).values_list("pk", flat=True)[:3]:
            page = superuser_client.get(reverse(f"admin:{info}_change", args=[pk]))
            assert page.status_code == 200, (info, pk)
            _assert_clean(f"admin {info} {pk}", page.content.decode(), secrets)
            pages += 1
    assert pages >= 8  # accounts, events, attendees, templates, deliveries, endpoints…

    assert caplog.records
    for record in caplog.records:
        text = record.getMessage() + (record.exc_text or "") + repr(record.__dict__)
        _assert_clean(f"log {record.name}", text, secrets)


# --- forged provider callbacks --------------------------------------------------------------

@pytest.fixture
def sent(api, event_id, template_id) -> Delivery:
    response = api.post("/checkin/v1/api/guest", guest(event_id, template_id))
    delivery = Delivery.objects.get(id=response.json()["attendeeInvitationId"])
    assert delivery.status == "sent"
    return delivery


def _sendgrid_post(api, body: str, headers: dict[str, str]):
    with api.capture(execute=True):
        return api.client.generic("POST", "/callbacks/sendgrid", body,
                                  content_type="application/json", **headers)


def _bounce(delivery: Delivery) -> str:
    return dumps([sendgrid_event("bounce", delivery_id=str(delivery.id),
                                 message_id=delivery.provider_message_id,
                                 email=delivery.recipient, event_id=f"sg-{uuid.uuid4()}",
                                 type="bounce", reason="550 5.1.1 No such user")])


@pytest.mark.parametrize("forge", [
    "unsigned", "other-key", "tampered-body", "stale", "future", "garbage-signature",
    "no-key-configured",
])
def test_forged_sendgrid_callbacks_are_refused(api, sent, settings, forge):
    signer, impostor = SendGridSigner(), SendGridSigner()
    settings.SENDGRID_WEBHOOK_PUBLIC_KEY = signer.public_key
    body = _bounce(sent)
    headers = {
        "unsigned": lambda: {},
        "other-key": lambda: impostor.headers(body),
        "tampered-body": lambda: signer.headers(body.replace("bounce", "delivered")),
        "stale": lambda: signer.headers(body, timestamp=int(time.time()) - 3600),
        "future": lambda: signer.headers(body, timestamp=int(time.time()) + 3600),
        "garbage-signature": lambda: {**signer.headers(body),
                                      "HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_SIGNATURE": "!!"},
        "no-key-configured": lambda: signer.headers(body),
    }[forge]()
    if forge == "no-key-configured":
        settings.SENDGRID_WEBHOOK_PUBLIC_KEY = ""
    response = _sendgrid_post(api, body, headers)
    assert response.status_code == 403, response.content
    assert not CallbackBatch.objects.exists()
    sent.refresh_from_db()
    assert sent.status == "sent" and not Suppression.objects.exists()
    # The same body, genuinely signed, is accepted: the refusals above are not vacuous.
    settings.SENDGRID_WEBHOOK_PUBLIC_KEY = signer.public_key
    assert _sendgrid_post(api, body, signer.headers(body)).status_code == 200
    sent.refresh_from_db()
    assert sent.status == "bounced"


TOPIC = "arn:aws:sns:us-east-1:123456789012:herald-ses-events"


def _ses_bounce(delivery: Delivery) -> dict[str, Any]:
    """A minimal SES Bounce event as SES publishes it to SNS."""
    return {
        "eventType": "Bounce",
        "mail": {"timestamp": "2026-04-29T20:43:50.000Z", "messageId": "ses-msg-1",
                 "source": "tickets@herald.localhost", "destination": [delivery.recipient],
                 "tags": {"herald_delivery_id": [str(delivery.id)]}},
        "bounce": {"feedbackId": "fb-1", "bounceType": "Permanent", "bounceSubType": "General",
                   "timestamp": "2026-04-29T20:43:55.123Z",
                   "bouncedRecipients": [{"emailAddress": delivery.recipient,
                                          "status": "5.1.1",
                                          "diagnosticCode": "smtp; 550 5.1.1 user unknown"}]},
    }


@pytest.fixture
def sns_signer(settings):
    signer = SnsSigner()
    settings.HERALD_SES_SNS_TOPIC_ARNS = [TOPIC]
    previous = sns.certificate_loader_set(signer.loader)
    yield signer
    sns.certificate_loader_set(previous)


def _sns_post(api, envelope: dict[str, Any]):
    with api.capture(execute=True):
        return api.client.generic("POST", "/callbacks/ses", json.dumps(envelope),
                                  content_type="text/plain; charset=UTF-8",
                                  HTTP_X_AMZ_SNS_MESSAGE_TYPE=envelope.get("Type", ""))


@pytest.mark.parametrize("forge", [
    "impostor-key", "tampered-message", "other-topic", "unsigned", "attacker-cert-url",
    "http-cert-url",
])
def test_forged_sns_callbacks_are_refused(api, sent, sns_signer, forge):
    genuine = sns_signer.notification(_ses_bounce(sent), topic_arn=TOPIC)
    impostor = SnsSigner()
    impostor.cert_url = sns_signer.cert_url
    envelope = {
        "impostor-key": lambda: impostor.notification(_ses_bounce(sent), topic_arn=TOPIC),
        "tampered-message": lambda: {**genuine, "Message": genuine["Message"].replace(
            "Permanent", "Transient")},
        "other-topic": lambda: sns_signer.notification(
            _ses_bounce(sent), topic_arn=TOPIC.replace("123456789012", "210987654321")),
        "unsigned": lambda: {k: v for k, v in genuine.items() if k != "Signature"},
        "attacker-cert-url": lambda: {**genuine, "SigningCertURL":
                                      "https://attacker.example/SimpleNotificationService-a.pem"},
        "http-cert-url": lambda: {**genuine, "SigningCertURL": genuine["SigningCertURL"]
                                  .replace("https://", "http://")},
    }[forge]()
    response = _sns_post(api, envelope)
    assert response.status_code == 403, response.content
    assert not CallbackBatch.objects.exists()
    sent.refresh_from_db()
    assert sent.status == "sent"
    assert _sns_post(api, genuine).status_code == 200  # the genuine one passes
    sent.refresh_from_db()
    assert sent.status == "bounced"


# --- SSRF -----------------------------------------------------------------------------------

SSRF_URLS = [
    "http://127.0.0.1/hook", "http://127.255.255.254:8080/hook", "http://10.0.0.1/hook",
    "http://10.255.255.254/hook", "http://172.16.0.1/hook", "http://172.31.255.254/hook",
    "http://192.168.0.1/hook", "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/hook", "http://100.127.255.254/hook", "http://198.18.0.1/hook",
    "http://198.19.255.254/hook", "http://0.0.0.0/hook", "http://224.0.0.1/hook",
    "http://[::1]/hook", "http://[::]/hook", "http://[fc00::1]/hook",
    "http://[fdff:ffff::1]/hook", "http://[fe80::1]/hook", "http://[febf::1]/hook",
    "http://[fec0::1]/hook", "http://[::ffff:127.0.0.1]/hook", "http://[::ffff:10.0.0.1]/hook",
    "http://[::ffff:a9fe:a9fe]/hook", "http://[64:ff9b::7f00:1]/hook",
    "http://[2002:7f00:1::]/hook", "http://localhost/hook", "http://LOCALHOST./hook",
    "http://localhost:8000/hook", "http://2130706433/hook", "http://0x7f000001/hook",
    "http://0177.0.0.1/hook", "http://127.1/hook",
]


@pytest.mark.parametrize("url", SSRF_URLS)
def test_webhook_urls_to_non_public_addresses_are_refused(api, settings, url):
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = False
    response = _call(api, "post", "/v1/webhooks", {"url": url})
    assert response.status_code == 400, (url, response.content)
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert not Endpoint.objects.exists()
    created = _call(api, "post", "/v1/webhooks", {"url": PUBLIC_HOOK})
    assert created.status_code == 201, created.content
    uuid_ = created.json()["webhook"]["uuid"]
    response = _call(api, "patch", f"/v1/webhooks/{uuid_}", {"url": url})
    assert response.status_code == 400, (url, response.content)
    assert Endpoint.objects.get(id=uuid_).url == PUBLIC_HOOK


def test_redirects_are_not_followed_and_rebinding_is_rechecked(api, sandbox_api, event_id,
                                                              template_id, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = True  # the receivers below live on 127.0.0.1
    settings.WEBHOOKS_RETRY_SCHEDULE = [0]
    settings.HERALD_SANDBOX_DELAY_SECONDS = 0
    with WebhookReceiver() as receiver, WebhookReceiver("/internal") as internal:
        receiver.answer_with(Answer(status=307, headers=(("Location", internal.url),)),
                             times=50)
        created = _call(api, "post", "/v1/webhooks",
                        {"url": receiver.url, "enabled_events": ["comms.sent"],
                         "include_test_events": True})
        receiver.secret = created.json()["webhook"]["signing_secret"]
        sandbox_api.post("/checkin/v1/api/guest", guest(event_id, template_id))
        assert len(receiver.received) == 1 and internal.received == []
        message = Message.objects.get()
        assert message.status == "failed"
        assert [a.status_code for a in message.attempt_log.all()] == [307]
        # The address is vetted again at delivery time: once private addresses are off, the
        # saved loopback URL is never connected to.
        settings.WEBHOOKS_ALLOW_PRIVATE_URLS = False
        sandbox_api.post("/checkin/v1/api/guest", guest(event_id, template_id))
        assert len(receiver.received) == 1 and internal.received == []


# --- the template sandbox -------------------------------------------------------------------

ESCAPES = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ self._TemplateReference__context }}",
    "{{ lipsum.__globals__['os'].environ }}",
    "{{ joiner.__init__.__globals__.__builtins__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{% for c in ''.__class__.__mro__[1].__subclasses__() %}{{ c.__name__ }}{% endfor %}",
    "{{ firstName.__class__.__base__.__subclasses__() }}",
    "{{ event.__class__.__init__.__globals__ }}",
    "{{ (firstName|attr('__class__')).__mro__ }}",
    "{{ '{0.__class__.__mro__}'.format(firstName) }}",
]
# Names of other template engines' globals: unknown tokens here, so they render empty.
PROBES = ["{{ config }}{{ request }}{{ settings.SECRET_KEY }}{{ self.__init__ }}",
          "{{ lipsum }}{{ cycler }}{{ range }}{{ self }}{{ firstName.upper }}"]
INTERNALS = ("<class", "<function", "<built-in", "<module", "object at 0x", "__globals__",
             "__builtins__", "SECRET_KEY", "jinja2", "TemplateReference", "os.environ")


def _template(api, source: str):
    return api.post("/comms/v1/api/comms/template",
                    {"name": "escape", "subject": "Ticket", "htmlBody": source,
                     "textBody": source})


def _send_with(api, event_id, source: str) -> Delivery | None:
    """Save the template and send it; None when the save refused it."""
    saved = _template(api, source)
    if saved.status_code == 400:
        assert saved.json()["error"] == "template_syntax_error", saved.content
        return None
    assert saved.status_code == 201, saved.content
    response = api.post("/checkin/v1/api/guest", guest(event_id, saved.json()["id"]))
    assert response.status_code == 200, response.content
    return Delivery.objects.get(id=response.json()["attendeeInvitationId"])


@pytest.mark.parametrize("source", ESCAPES + PROBES)
def test_sandbox_escapes_never_reach_a_recipient(api, event_id, source):
    delivery = _send_with(api, event_id, source)
    if delivery is None:
        return
    assert delivery.status in ("sent", "failed"), delivery.status
    content = delivery.subject + delivery.html_body + delivery.text_body
    assert not any(marker in content for marker in INTERNALS), content[:500]
    assert not any(marker in delivery.failure_reason for marker in INTERNALS[4:])


@pytest.mark.parametrize("source", ESCAPES)
def test_sandbox_escapes_are_refused_at_save_or_fail_the_delivery(api, event_id, source):
    """An escape attempt is an error, not a silently blank message."""
    delivery = _send_with(api, event_id, source)
    if delivery is not None:
        assert (delivery.status, delivery.failure_type) == ("failed", "template_error"), (
            f"sent as {delivery.text_body[:200]!r}")


BOMBS = {
    "nested-loops": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}"
                    "{% endfor %}done",
    "nested-loops-output": "{% for i in range(100000) %}{% for j in range(100000) %}x"
                           "{% endfor %}{% endfor %}",
    "loop-of-repeats": "{% for i in range(100000) %}{{ 'a' * 100000 }}{% endfor %}",
    "repeat": "{{ 'a' * 100000000 }}",
    "power": "{{ 2 ** 100000000 }}",
    "range": "{{ range(1000000000) | list }}",
    "center": "{{ 'a' | center(900000000) }}",
    "format-width": "{{ '{:>900000000}'.format('a') }}",
    "percent-width": "{{ '%900000000s' | format('a') }}",
    "concat-doubling": "{% set a = 'a' * 100000 %}{% set b = a~a~a~a~a~a~a~a~a~a %}"
                       "{% set c = b~b~b~b~b~b~b~b~b~b %}{% set d = c~c~c~c~c~c~c~c~c~c %}"
                       "{% set e = d~d~d~d~d~d~d~d~d~d %}{{ e | length }}",
    "lipsum": "{{ lipsum(100000) }}",
    "recursion": "{% macro r(n) %}{{ r(n) }}{% endmacro %}{{ r(1) }}",
    "list-growth": "{% set xs = [] %}{% for i in range(100000) %}{% for j in range(100000) %}"
                   "{% if xs.append(j) %}{% endif %}{% endfor %}{% endfor %}",
}
BOMB_SECONDS = 3.0
BOMB_MAX_RSS_MB = 300  # the worker's RSS target (issue 10)

_RUNNER = textwrap.dedent("""
    import json, resource, sys, time
    limit = int(sys.argv[2]) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from templates.rendering import render, template_check
    source, started, outcome = sys.argv[1], time.monotonic(), {}
    try:
        template_check(subject="s", html_body=source, text_body=source)
        r = render(cache_key=("bomb", 1), subject="s", html_body=source, text_body=source,
                   context={"firstName": "Jane", "event": {"name": "Gala"}})
        outcome["size"] = len(r.subject) + len(r.html) + len(r.text)
    except BaseException as exc:
        outcome["error"] = type(exc).__name__
    outcome["seconds"] = time.monotonic() - started
    # VmHWM: this process's peak RSS (ru_maxrss would include the parent's, from the fork).
    with open("/proc/self/status") as status:
        peak = next(line for line in status if line.startswith("VmHWM:"))
    outcome["rss_mb"] = int(peak.split()[1]) / 1024
    print(json.dumps(outcome))
""")


def _render_isolated(source: str) -> dict[str, Any]:
    """Render in a child process with a memory cap and a deadline, so a bomb that works
    cannot hang or starve the test run: it shows as a failure instead."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", _RUNNER, source, str(BOMB_MAX_RSS_MB * 3)],
            capture_output=True, text=True, timeout=BOMB_SECONDS + 1,
            cwd=Path(django_settings.BASE_DIR))
    except subprocess.TimeoutExpired:
        return {"error": "timeout", "seconds": BOMB_SECONDS + 1, "rss_mb": 0}
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", list(BOMBS))
def test_resource_bombs_fail_fast_and_the_delivery_fails(api, event_id, name):
    source = BOMBS[name]
    outcome = _render_isolated(source)
    assert outcome.get("error") not in ("timeout", "MemoryError"), outcome
    assert outcome["seconds"] < BOMB_SECONDS, outcome
    assert outcome["rss_mb"] < BOMB_MAX_RSS_MB, outcome
    # Safe to run in this process now: the send ends in a final state, without a provider call.
    delivery = _send_with(api, event_id, source)
    if delivery is not None:
        if outcome.get("size", 0) <= django_settings.HERALD_MAX_RENDERED_CHARS and (
                "error" not in outcome):
            assert delivery.status == "sent"
        else:
            assert (delivery.status, delivery.failure_type) == ("failed", "template_error")
