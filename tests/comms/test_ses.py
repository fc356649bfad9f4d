"""Amazon SES end to end: boto3 against moto's server for sends, genuinely signed SNS
envelopes (test CA, injected certificate loader) for events at /callbacks/ses."""

import json
import re
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from cryptography import x509
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends
from moto.sns.models import sns_backends

from comms.callbacks import ses as ses_callbacks
from comms.callbacks import sns
from comms.callbacks.ses import parse_message
from comms.models import CallbackBatch, Delivery, DeliveryEvent
from comms.providers import email_provider
from comms.providers.base import (
    EmailMessage,
    ProviderConfigurationError,
    ProviderPermanentError,
    ProviderTransientError,
)
from comms.providers.ses import SesConfig, send_email_params
from tests.conftest import guest
from tests.fakes.sns_signing import SnsSigner

REGION = "us-east-1"
TOPIC = f"arn:aws:sns:{REGION}:123456789012:herald-ses-events"
OTHER_TOPIC = f"arn:aws:sns:{REGION}:210987654321:someone-elses-topic"
CONFIG_SET = "herald-events"


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def aws(moto_url) -> Any:
    """A clean moto with Herald's sending domain verified (moto refuses unverified senders)."""
    urllib.request.urlopen(urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST"))
    client = boto3.client("sesv2", region_name=REGION, endpoint_url=moto_url)
    client.create_email_identity(EmailIdentity="herald.localhost")
    client.create_configuration_set(ConfigurationSetName=CONFIG_SET)
    return client


@pytest.fixture
def ses(settings, aws, moto_url) -> str:
    settings.HERALD_EMAIL_PROVIDER = "ses"
    settings.HERALD_SES_REGION = REGION
    settings.HERALD_SES_ENDPOINT_URL = moto_url
    settings.HERALD_SES_CONFIGURATION_SET = CONFIG_SET
    settings.HERALD_PROVIDER_TIMEOUT_SECONDS = 2
    return moto_url


@pytest.fixture
def signer(settings) -> Iterator[SnsSigner]:
    signer = SnsSigner(region=REGION)
    settings.HERALD_SES_SNS_TOPIC_ARNS = [TOPIC]
    previous = sns.certificate_loader_set(signer.loader)
    yield signer
    sns.certificate_loader_set(previous)


@pytest.fixture
def confirmed() -> Iterator[list[str]]:
    fetched: list[str] = []
    previous = ses_callbacks.subscribe_url_fetcher_set(fetched.append)
    yield fetched
    ses_callbacks.subscribe_url_fetcher_set(previous)


def moto_sent() -> list[Any]:
    return ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages


@pytest.fixture
def sent(api, ses, event_id, template_id) -> Delivery:
    response = api.post("/checkin/v1/api/guest", guest(event_id, template_id))
    assert response.status_code == 200, response.content
    delivery = Delivery.objects.get(id=response.json()["attendeeInvitationId"])
    assert delivery.status == "sent", delivery.failure_reason
    return delivery


def post_sns(api, envelope: dict[str, Any] | str):
    body = envelope if isinstance(envelope, str) else json.dumps(envelope)
    kind = "" if isinstance(envelope, str) else envelope.get("Type", "")
    with api.capture(execute=True):
        return api.client.generic("POST", "/callbacks/ses", body,
                                  content_type="text/plain; charset=UTF-8",
                                  HTTP_X_AMZ_SNS_MESSAGE_TYPE=kind)


# --- SES events, shaped as SES publishes them to SNS ---------------------------------------

TS = "2026-04-29T20:43:55.123Z"


def _mail(message_id: str, delivery_id: str | None, to: str) -> dict[str, Any]:
    tags = {"ses:configuration-set": [CONFIG_SET], "ses:source-ip": ["192.0.2.10"],
            "ses:from-domain": ["herald.localhost"], "ses:caller-identity": ["herald"]}
    if delivery_id:
        tags["herald_delivery_id"] = [delivery_id]
    return {
        "timestamp": "2026-04-29T20:43:50.000Z", "source": "Herald <tickets@herald.localhost>",
        "sourceArn": f"arn:aws:ses:{REGION}:123456789012:identity/herald.localhost",
        "sendingAccountId": "123456789012", "messageId": message_id, "destination": [to],
        "headersTruncated": False,
        "headers": [{"name": "From", "value": "Herald <tickets@herald.localhost>"},
                    {"name": "To", "value": to}, {"name": "Subject", "value": "Your ticket"}],
        "commonHeaders": {"from": ["Herald <tickets@herald.localhost>"], "to": [to],
                          "messageId": message_id, "subject": "Your ticket"},
        "tags": tags,
    }


DETAILS: dict[str, tuple[str, dict[str, Any]]] = {
    "Send": ("send", {}),
    "Delivery": ("delivery", {
        "timestamp": TS, "processingTimeMillis": 546, "recipients": ["{to}"],
        "smtpResponse": "250 2.6.0 Message received", "remoteMtaIp": "198.51.100.7",
        "reportingMTA": "a8-70.smtp-out.amazonses.com"}),
    "Bounce": ("bounce", {
        "feedbackId": "0100017e-bounce-feedback", "bounceType": "Permanent",
        "bounceSubType": "General", "timestamp": TS,
        "reportingMTA": "dsn; e226-55.smtp-out.us-east-1.amazonses.com",
        "bouncedRecipients": [{"emailAddress": "{to}", "action": "failed", "status": "5.1.1",
                               "diagnosticCode": "smtp; 550 5.1.1 user unknown"}]}),
    "Complaint": ("complaint", {
        "feedbackId": "0100017e-complaint-feedback", "complaintSubType": None,
        "complainedRecipients": [{"emailAddress": "{to}"}], "timestamp": TS,
        "userAgent": "Mozilla/5.0", "complaintFeedbackType": "abuse",
        "arrivalDate": "2026-04-29T20:43:52.000Z"}),
    "Reject": ("reject", {"reason": "Bad content"}),
    "Open": ("open", {"ipAddress": "192.0.2.1", "timestamp": TS,
                      "userAgent": "Mozilla/5.0 (iPhone)"}),
    "Click": ("click", {"ipAddress": "192.0.2.1", "timestamp": TS,
                        "link": "https://herald.localhost/ticket", "linkTags": {},
                        "userAgent": "Mozilla/5.0"}),
    "DeliveryDelay": ("deliveryDelay", {
        "timestamp": TS, "delayType": "TransientCommunicationFailure",
        "expirationTime": "2026-04-30T20:43:55.123Z", "reportingMTA": "a8-70.amazonses.com",
        "delayedRecipients": [{"emailAddress": "{to}", "status": "4.4.1",
                               "diagnosticCode": "smtp; 421 4.4.1 Unable to connect"}]}),
    "Subscription": ("subscription", {
        "contactList": "Tickets", "timestamp": TS, "source": "UnsubscribeHeader",
        "newTopicPreferences": {"unsubscribeAll": True, "topicSubscriptionStatus": [
            {"topicName": "Tickets", "subscriptionStatus": "OptOut"}]},
        "oldTopicPreferences": {"unsubscribeAll": False, "topicSubscriptionStatus": [
            {"topicName": "Tickets", "subscriptionStatus": "OptIn"}]}}),
    "Rendering Failure": ("failure", {
        "templateName": "Ticket",
        "errorMessage": "Attribute 'firstName' is not present in the rendering data."}),
}


def ses_event(kind: str, *, message_id: str, delivery_id: str | None,
              to: str = "jane@example.com", key: str = "eventType",
              **changes: Any) -> dict[str, Any]:
    name, detail = DETAILS[kind]
    detail = json.loads(json.dumps(detail).replace("{to}", to))
    detail.update(changes)
    return {key: kind, "mail": _mail(message_id, delivery_id, to), name: detail}


def envelope(event: dict[str, Any] | str, message_id: str = "sns-1") -> str:
    return json.dumps({"Type": "Notification", "MessageId": message_id, "TopicArn": TOPIC,
                       "Message": event if isinstance(event, str) else json.dumps(event),
                       "Timestamp": TS})


# --- the send path --------------------------------------------------------------------------

def test_ses_send_then_signed_bounce_blocks_resend(api, ses, signer, event_id, template_id):
    body = guest(event_id, template_id)
    response = api.post("/checkin/v1/api/guest", body)
    delivery = Delivery.objects.get(id=response.json()["attendeeInvitationId"])
    assert delivery.status == "sent" and delivery.provider == "ses"
    [message] = moto_sent()
    assert delivery.provider_message_id == message.id
    assert message.subject == "Your ticket for Spring Gala"
    assert message.destinations == {"ToAddresses": ["Jane Smith <jane@example.com>"]}

    bounce = ses_event("Bounce", message_id=message.id, delivery_id=str(delivery.id))
    response = post_sns(api, signer.notification(bounce, topic_arn=TOPIC))
    assert response.status_code == 200, response.content
    delivery.refresh_from_db()
    assert delivery.status == "bounced"
    assert delivery.failure_reason == "smtp; 550 5.1.1 user unknown"
    assert (delivery.bounce_type, delivery.bounce_subtype) == ("Permanent", "General")

    resend = api.post("/comms/v1/api/comms/send", {
        "attendeeId": body["id"], "templateId": template_id, "correlationId": "resend-1"})
    assert resend.status_code == 422
    data = resend.json()
    assert list(data) == ["error", "message", "failureType", "lastFailureAt",
                          "lastFailureReason"]
    assert data["error"] == "previous_send_permanently_failed"
    assert data["failureType"] == "bounced"
    assert data["lastFailureReason"] == "smtp; 550 5.1.1 user unknown"
    assert data["lastFailureAt"] == "2026-04-29T20:43:55Z"
    assert len(moto_sent()) == 1


def test_send_parameters_carry_tags_and_configuration_set() -> None:
    message = EmailMessage(
        delivery_id="7d1c1f3e-0000-4000-8000-000000000001", from_email="tickets@herald.localhost",
        from_name="Hérald", to_email="jane@example.com", to_name="Jane Smith",
        subject="Hi", html="<p>Hi</p>", text="Hi",
        custom_args={"herald_delivery_id": "ignored", "order": "A/42 b"})
    params = send_email_params(message, SesConfig(region=REGION, configuration_set="events"))
    assert params["ConfigurationSetName"] == "events"
    assert params["EmailTags"] == [
        {"Name": "herald_delivery_id", "Value": "7d1c1f3e-0000-4000-8000-000000000001"},
        {"Name": "order", "Value": "A_42_b"}]
    assert params["FromEmailAddress"] == "=?utf-8?q?H=C3=A9rald?= <tickets@herald.localhost>"
    assert params["Content"]["Simple"]["Body"] == {
        "Text": {"Data": "Hi", "Charset": "UTF-8"}, "Html": {"Data": "<p>Hi</p>",
                                                             "Charset": "UTF-8"}}
    assert "ConfigurationSetName" not in send_email_params(message, SesConfig(region=REGION))


def _message(to: str = "jane@example.com", sender: str = "tickets@herald.localhost"):
    return EmailMessage(delivery_id="d-1", from_email=sender, from_name="", to_email=to,
                        to_name="", subject="s", html="", text="t")


def test_unverified_sender_is_permanent(ses):
    with pytest.raises(ProviderPermanentError, match="MessageRejected"):
        email_provider("ses").send(_message(sender="someone@unverified.example"))


def test_unreachable_endpoint_is_transient(ses, settings):
    settings.HERALD_SES_ENDPOINT_URL = "http://127.0.0.1:9"
    with pytest.raises(ProviderTransientError, match="unreachable"):
        email_provider("ses").send(_message())


def test_missing_credentials_is_a_configuration_error(ses, settings, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    settings.HERALD_SES_REGION = "eu-west-3"  # another configuration: a fresh client
    with pytest.raises(ProviderConfigurationError, match="not configured"):
        email_provider("ses").send(_message())


def test_transient_send_failures_retry_then_fail(api, ses, settings, event_id, template_id):
    settings.HERALD_SES_ENDPOINT_URL = "http://127.0.0.1:9"
    settings.HERALD_SEND_MAX_ATTEMPTS = 2
    response = api.post("/checkin/v1/api/guest", guest(event_id, template_id))
    delivery = Delivery.objects.get(id=response.json()["attendeeInvitationId"])
    assert delivery.status == "failed" and delivery.failure_type == "transient"
    assert delivery.attempts == 2


# --- SES event types → the vocabulary -------------------------------------------------------

@pytest.mark.parametrize("kind,event,reason", [
    ("Send", "sent", ""),
    ("Delivery", "delivered", ""),
    ("Bounce", "bounced", "smtp; 550 5.1.1 user unknown"),
    ("Complaint", "spam_reported", "abuse"),
    ("Reject", "dropped", "Bad content"),
    ("Open", "opened", ""),
    ("Click", "clicked", ""),
    ("DeliveryDelay", "deferred", "smtp; 421 4.4.1 Unable to connect"),
    ("Subscription", "unsubscribed", ""),
    ("Rendering Failure", "failed",
     "Attribute 'firstName' is not present in the rendering data."),
])
def test_each_ses_event_type_maps_to_the_vocabulary(kind, event, reason):
    [parsed] = parse_message(envelope(ses_event(kind, message_id="ses-1", delivery_id="d-1")))
    assert (parsed.event, parsed.reason) == (event, reason)
    assert parsed.provider == "ses" and parsed.provider_event_id == "sns-1"
    assert (parsed.delivery_id, parsed.provider_message_id) == ("d-1", "ses-1")
    assert parsed.recipient == "jane@example.com"
    assert parsed.raw["eventType"] == kind
    if kind == "Complaint":
        assert parsed.raw["complaintFeedbackType"] == "abuse"
    if kind == "Click":
        assert parsed.raw["link"] == "https://herald.localhost/ticket"


@pytest.mark.parametrize("bounce_type,subtype", [("Transient", "MailboxFull"),
                                                 ("Undetermined", "Undetermined")])
def test_non_permanent_bounces_are_deferred(bounce_type, subtype):
    event = ses_event("Bounce", message_id="ses-1", delivery_id="d-1",
                      bounceType=bounce_type, bounceSubType=subtype)
    [parsed] = parse_message(envelope(event))
    assert parsed.event == "deferred"
    assert (parsed.bounce_type, parsed.bounce_subtype) == (bounce_type, subtype)


def test_permanent_bounce_details():
    [parsed] = parse_message(envelope(ses_event("Bounce", message_id="m", delivery_id="d")))
    assert (parsed.bounce_type, parsed.bounce_subtype) == ("Permanent", "General")
    assert parsed.occurred_at.isoformat() == "2026-04-29T20:43:55.123000+00:00"


def test_notification_type_without_configuration_set_correlates_by_message_id():
    event = ses_event("Bounce", message_id="ses-9", delivery_id=None, key="notificationType")
    [parsed] = parse_message(envelope(event))
    assert parsed.event == "bounced"
    assert (parsed.delivery_id, parsed.provider_message_id) == (None, "ses-9")


def test_several_recipients_get_one_event_each():
    event = ses_event("Delivery", message_id="m", delivery_id="d")
    event["delivery"]["recipients"] = ["a@example.com", "b@example.com"]
    parsed = parse_message(envelope(event, message_id="sns-7"))
    assert [(p.provider_event_id, p.recipient) for p in parsed] == [
        ("sns-7#0", "a@example.com"), ("sns-7#1", "b@example.com")]


def test_resubscription_is_not_an_unsubscribe():
    event = ses_event("Subscription", message_id="m", delivery_id="d", newTopicPreferences={
        "unsubscribeAll": False,
        "topicSubscriptionStatus": [{"topicName": "Tickets", "subscriptionStatus": "OptIn"}]})
    assert parse_message(envelope(event))[0].event == "resubscribed"


def test_unknown_types_and_non_ses_notifications_yield_nothing():
    assert parse_message(envelope({"eventType": "Mystery", "mail": {}})) == []
    assert parse_message(envelope("Successfully validated SNS topic for Amazon SES event "
                                  "publishing.")) == []
    with pytest.raises(ValueError):
        parse_message("not json")


# --- /callbacks/ses: signatures, topics, subscriptions, dedupe ------------------------------

@pytest.mark.parametrize("version", ["1", "2"])
def test_signature_versions_one_and_two_are_accepted(api, sent, signer, version):
    event = ses_event("Delivery", message_id=sent.provider_message_id,
                      delivery_id=str(sent.id))
    response = post_sns(api, signer.notification(event, topic_arn=TOPIC, version=version,
                                                 subject="Amazon SES Email Event Notification"))
    assert response.status_code == 200, response.content
    sent.refresh_from_db()
    assert sent.status == "delivered"
    assert signer.fetched == [signer.cert_url]


def _forged(signer, sent) -> dict[str, Any]:
    event = ses_event("Bounce", message_id=sent.provider_message_id, delivery_id=str(sent.id))
    return signer.notification(event, topic_arn=TOPIC)


@pytest.mark.parametrize("tamper", [
    lambda e: {**e, "Message": e["Message"].replace("Permanent", "Transient")},
    lambda e: {**e, "TopicArn": TOPIC + "-other"},
    lambda e: {**e, "Signature": e["Signature"][:-8] + "AAAAAAA="},
    lambda e: {**e, "SignatureVersion": "3"},
    lambda e: {k: v for k, v in e.items() if k != "Signature"},
    lambda e: {**e, "SigningCertURL": e["SigningCertURL"].replace(
        "amazonaws.com/", "amazonaws.com.attacker.example/")},
    lambda e: {**e, "SigningCertURL": e["SigningCertURL"].replace("https://", "http://")},
    lambda e: {**e, "SigningCertURL": e["SigningCertURL"].replace(
        "sns.us-east-1", "sns-mirror.us-east-1")},
    lambda e: {**e, "SigningCertURL": e["SigningCertURL"].replace(".pem", ".pem?x=1")},
    lambda e: {**e, "SigningCertURL": "https://attacker.example/SimpleNotificationService-ab.pem"},
], ids=["message", "topic", "signature", "version", "unsigned", "host-suffix", "http",
        "host-prefix", "query", "other-host"])
def test_forged_or_misaddressed_messages_are_refused(api, sent, signer, tamper):
    response = post_sns(api, tamper(_forged(signer, sent)))
    assert response.status_code == 403
    assert not CallbackBatch.objects.exists()
    sent.refresh_from_db()
    assert sent.status == "sent"
    assert all(url == signer.cert_url for url in signer.fetched)


def test_a_certificate_from_another_key_is_refused(api, sent, signer):
    impostor = SnsSigner(region=REGION)
    impostor.cert_url = signer.cert_url  # same URL, different key: the signature fails
    response = post_sns(api, impostor.notification(
        ses_event("Bounce", message_id="m", delivery_id=str(sent.id)), topic_arn=TOPIC))
    assert response.status_code == 403 and not CallbackBatch.objects.exists()


def test_unfetchable_certificate_asks_sns_to_retry(api, sent, signer):
    envelope_ = _forged(signer, sent)
    signer.cert_url = signer.cert_url.replace("Service-", "Service-0")  # loader: 404
    response = post_sns(api, envelope_)
    assert response.status_code == 503 and not CallbackBatch.objects.exists()


def test_notification_from_a_topic_not_allowed_is_refused(api, sent, signer):
    event = ses_event("Bounce", message_id=sent.provider_message_id, delivery_id=str(sent.id))
    response = post_sns(api, signer.notification(event, topic_arn=OTHER_TOPIC))
    assert response.status_code == 403 and not CallbackBatch.objects.exists()


def test_subscription_to_an_allowed_topic_is_confirmed(api, signer, confirmed):
    message = signer.confirmation("SubscriptionConfirmation", topic_arn=TOPIC)
    response = post_sns(api, message)
    assert response.status_code == 200
    assert confirmed == [message["SubscribeURL"]]
    assert not CallbackBatch.objects.exists()


def test_subscription_to_another_topic_is_refused(api, signer, confirmed):
    response = post_sns(api, signer.confirmation("SubscriptionConfirmation",
                                                 topic_arn=OTHER_TOPIC, version="1"))
    assert response.status_code == 403
    assert confirmed == []


def test_subscribe_url_must_be_an_sns_url(api, signer, confirmed):
    message = signer.confirmation("SubscriptionConfirmation", topic_arn=TOPIC)
    message["SubscribeURL"] = "https://attacker.example/?Action=ConfirmSubscription"
    response = post_sns(api, signer.sign(message))
    assert response.status_code == 403
    assert confirmed == []


def test_unsubscribe_confirmation_is_acknowledged(api, signer, confirmed, caplog):
    response = post_sns(api, signer.confirmation("UnsubscribeConfirmation", topic_arn=TOPIC))
    assert response.status_code == 200
    assert confirmed == [] and not CallbackBatch.objects.exists()
    assert "unsubscribed Herald" in caplog.text


def test_duplicate_notification_is_applied_once(api, sent, signer):
    event = ses_event("Delivery", message_id=sent.provider_message_id,
                      delivery_id=str(sent.id))
    message = signer.notification(event, topic_arn=TOPIC)
    assert post_sns(api, message).status_code == 200
    assert post_sns(api, message).status_code == 200
    assert CallbackBatch.objects.count() == 2
    assert DeliveryEvent.objects.filter(delivery=sent, name="comms.delivered").count() == 1
    assert list(CallbackBatch.objects.values_list("events_applied", flat=True)
                .order_by("id")) == [1, 0]


def test_late_delivery_after_open_does_not_move_back(api, sent, signer):
    def post(kind):
        event = ses_event(kind, message_id=sent.provider_message_id, delivery_id=str(sent.id))
        assert post_sns(api, signer.notification(event, topic_arn=TOPIC)).status_code == 200

    post("Open")
    post("Delivery")
    sent.refresh_from_db()
    assert sent.status == "opened" and sent.delivered_at is not None


def test_malformed_bodies_are_400(api, signer):
    assert post_sns(api, "{not json").status_code == 400
    assert post_sns(api, "[1, 2]").status_code == 400
    assert api.client.get("/callbacks/ses").status_code == 405
    assert not CallbackBatch.objects.exists()


# --- cross-check with moto's own SNS signing --------------------------------------------------

class _Capture(BaseHTTPRequestHandler):
    bodies: list[str] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.bodies.append(self.rfile.read(length).decode("utf-8"))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def capture_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    _Capture.bodies = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_an_envelope_signed_by_moto_sns_verifies(api, aws, moto_url, capture_server,
                                                 settings):
    """moto signs HTTP deliveries like SNS (version 2): our verifier accepts them as is."""
    sns_client = boto3.client("sns", region_name=REGION, endpoint_url=moto_url)
    topic = sns_client.create_topic(Name="herald-ses-events")["TopicArn"]
    sns_client.subscribe(TopicArn=topic, Protocol="http", Endpoint=capture_server)
    sns_client.publish(TopicArn=topic, Message=json.dumps(
        ses_event("Send", message_id="ses-1", delivery_id="d-1")))
    [body] = _Capture.bodies
    envelope_ = json.loads(body)
    assert re.fullmatch(r"https://sns\.us-east-1\.amazonaws\.com/SimpleNotificationService-"
                        r"[0-9a-f]+\.pem", envelope_["SigningCertURL"])

    def from_moto(url: str) -> x509.Certificate:  # what moto would serve at that URL
        keys = sns_backends[DEFAULT_ACCOUNT_ID][REGION]._message_public_keys
        return x509.load_pem_x509_certificate(keys[urlsplit(url).path.lstrip("/")])

    assert sns.message_verify(envelope_, certificate_loader=from_moto)
    assert not sns.message_verify({**envelope_, "Message": "{}"}, certificate_loader=from_moto)
    settings.HERALD_SES_SNS_TOPIC_ARNS = [topic]
    previous = sns.certificate_loader_set(from_moto)
    try:
        response = post_sns(api, body)
    finally:
        sns.certificate_loader_set(previous)
    assert response.status_code == 200
    assert CallbackBatch.objects.get().provider == "ses"
