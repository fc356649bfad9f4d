"""Nothing internal or secret reaches a tenant, a cookie, the session or a log.

- The SSRF guard's refusal is a fixed sentence: never what a name resolved to nor the
  resolver's text (API 400s, deliveries, webhook attempts); the detail is logged.
- An SMTP relay's reply reaches tenants as its codes only (``SMTP 550 5.7.1``), as every
  provider's answer does (``vendor_reason``); the text goes to the server log at DEBUG.
- Secrets the admin shows once (API keys, webhook signing secrets) are in the response's
  body only (no-store), never in the messages cookie or the session.
- Slack: a network error is a clean transient error; a bot token that is not one line of a
  token's characters is refused at save and at use; the token is in no log record.
"""

import base64
import logging
import re
import socket
import zlib

import pytest
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import ApiKey
from accounts.services import account_create, membership_add
from common import crypto, ssrf
from common.errors import HeraldError
from comms import channels
from comms.channels import Link
from comms.models import Delivery, Integration
from comms.pipeline import chain_send
from comms.providers.base import (
    ChannelMessage,
    ProviderConfigurationError,
    ProviderPermanentError,
    ProviderTransientError,
)
from comms.providers.slack import SlackProvider
from comms.providers.webhook import WebhookChannelProvider
from tests.conftest import guest
from tests.fakes.smtp_server import free_port
from webhooks import services as webhook_services
from webhooks.models import Attempt, Endpoint

INTERNAL = ("127.0.0.1", "::1", "Errno", "loopback", "Name or service")


def _bearer(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def _clean(text: str) -> bool:
    return not any(word in text for word in INTERNAL)


# --- the SSRF guard's refusals ---------------------------------------------------------------

@pytest.fixture
def guard_on(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = False
    settings.HERALD_PROVIDER_API_BASE_OVERRIDE = False


def test_spec002_webhook_url_refusal_names_no_address(keys, guard_on, caplog):
    with caplog.at_level(logging.INFO, logger="herald.ssrf"):
        response = _bearer(keys.admin_key).post("/api/v1/communications/send", {
            "subject": "s", "body": "b", "channels": ["Webhook"],
            "webhookUrl": "http://localhost:6379/"}, format="json")
    assert response.status_code == 400
    body = response.content.decode()
    assert ssrf.NOT_PUBLIC in body and _clean(body), body
    # The operator still learns why, in the server log.
    assert "localhost" in caplog.text and "127.0.0.1" in caplog.text


def test_v1_webhooks_refusals_are_fixed_sentences(keys, guard_on, caplog):
    client = _bearer(keys.live_key)
    internal = client.post("/v1/webhooks", {"url": "http://localhost/x",
                                            "enabled_events": ["delivery.sent"]}, format="json")
    assert internal.status_code == 400
    assert internal.json()["error"] == f"url: {ssrf.NOT_PUBLIC}"
    with caplog.at_level(logging.INFO, logger="herald.ssrf"):
        unknown = client.post("/v1/webhooks", {"url": "http://no-such-host.invalid/x",
                                               "enabled_events": ["delivery.sent"]},
                              format="json")
    assert unknown.status_code == 400
    assert unknown.json()["error"] == f"url: {ssrf.NOT_RESOLVED}"
    assert "no-such-host.invalid" in caplog.text  # with the resolver's text, server-side
    assert not Endpoint.objects.exists()


def test_the_webhook_channel_refuses_at_use_without_naming_the_address(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = False
    secret = "whsec_" + base64.b64encode(b"0123456789abcdef").decode()
    provider = WebhookChannelProvider({}, {"signing_secret": secret}, timeout=2)
    message = ChannelMessage(delivery_id="d1", channel="webhook", to="http://localhost:9/x",
                             title="t", text="x")
    with pytest.raises(ProviderPermanentError) as refused:
        provider.send(message)
    assert str(refused.value) == f"Refused: {ssrf.NOT_PUBLIC}"


def test_a_webhook_attempt_refused_at_use_stores_no_address(keys, settings,
                                                            django_capture_on_commit_callbacks):
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = True  # saved under the development switch
    endpoint, _ = webhook_services.endpoint_create(account=keys.account,
                                                   url="http://localhost:9/hook")
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = False
    settings.WEBHOOKS_RETRY_SCHEDULE = [0]
    with django_capture_on_commit_callbacks(execute=True):
        webhook_services.endpoint_send_test(endpoint=endpoint)
    [attempt] = Attempt.objects.all()
    assert attempt.error == f"Refused: {ssrf.NOT_PUBLIC}"
    assert attempt.status_code is None


# --- SMTP replies ----------------------------------------------------------------------------

LEAK = "550 5.7.1 relay mx-internal-7.corp.local[10.20.30.40] policy-token=s3cr3t"


def _leaks(text: str) -> bool:
    return any(word in text for word in ("10.20.30.40", "s3cr3t", "corp.local", "relay"))


def test_an_smtp_reply_reaches_the_tenant_as_its_codes_only(api, smtp, keys, event_id,
                                                            template_id, caplog):
    smtp.refuse("RCPT", LEAK)
    with caplog.at_level(logging.DEBUG, logger="herald.providers"):
        response = api.post("/checkin/v1/api/guest", guest(event_id, template_id))
    delivery = Delivery.objects.get(id=response.json()["attendeeInvitationId"])
    assert delivery.status == "failed" and delivery.failure_type == "provider_rejected"
    assert delivery.failure_reason == "SMTP recipient refused: SMTP 550 5.7.1"
    trace = _bearer(keys.live_key).get(f"/v1/deliveries/{delivery.id}/trace")
    status = api.get(f"/comms/v1/api/comms/send/{delivery.id}")
    assert trace.status_code == status.status_code == 200
    for text in (trace.content.decode(), status.content.decode()):
        assert "550" in text and not _leaks(text), text
    assert "s3cr3t" in caplog.text  # the relay's text: server log, DEBUG


def test_smtp_data_refusals_and_network_errors_are_codes_and_kinds(smtp, settings):
    from comms.providers import email_provider
    from tests.fakes.smtp_server import message

    smtp.refuse("DATA", "554 5.7.1 Message rejected from 10.20.30.40 (s3cr3t)")
    with pytest.raises(ProviderPermanentError) as refused:
        email_provider("smtp").send(message())
    assert str(refused.value) == "SMTP 554 5.7.1"
    smtp.refuse("RCPT", "451 temporarily deferred by relay 10.20.30.40")  # no enhanced code
    with pytest.raises(ProviderTransientError) as deferred:
        email_provider("smtp").send(message())
    assert str(deferred.value) == "SMTP recipient refused: SMTP 451"
    settings.EMAIL_PORT = free_port()  # nothing listens
    with pytest.raises(ProviderTransientError) as unreachable:
        email_provider("smtp").send(message())
    assert str(unreachable.value) == "SMTP server unreachable: SMTP ECONNREFUSED"
    settings.EMAIL_HOST = "no-such-relay.invalid"
    outcomes = email_provider("smtp").send_batch([message()])
    assert isinstance(outcomes[0], ProviderTransientError)
    # EAI_NONAME, or EAI_AGAIN without a resolver: never the resolver's text
    assert str(outcomes[0]).startswith("SMTP server unreachable: SMTP EAI_"), outcomes[0]


@pytest.mark.parametrize("provider", ["sendgrid", "ses"])
def test_email_providers_network_errors_are_kinds(request, settings, monkeypatch, provider):
    """Every email provider says what kind of network error it met, never its text (which
    names the endpoint: host, address, port)."""
    from comms.providers import email_provider
    from tests.fakes.smtp_server import message

    if provider == "sendgrid":
        request.getfixturevalue("sendgrid")
    else:
        settings.HERALD_EMAIL_PROVIDER, settings.HERALD_SES_REGION = "ses", "eu-west-1"
        settings.HERALD_PROVIDER_TIMEOUT_SECONDS = 2
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    port = free_port()
    settings.SENDGRID_API_HOST = settings.HERALD_SES_ENDPOINT_URL = f"http://127.0.0.1:{port}"
    with pytest.raises(ProviderTransientError) as unreachable:
        email_provider(provider).send(message())
    vendor = {"sendgrid": "SendGrid", "ses": "SES"}[provider]
    assert str(unreachable.value) == f"{vendor} unreachable: {vendor} ECONNREFUSED"


# --- secrets the admin shows once ------------------------------------------------------------

def _unsigned(value: str) -> str:
    """A Django signed value read as anyone can, without the SECRET_KEY."""
    payload = value.split(":", 1)[0]
    compressed = payload.startswith(".")
    payload = payload.lstrip(".")
    data = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    return (zlib.decompress(data) if compressed else data).decode("utf-8", "replace")


def _stored_anywhere(response, secret: str) -> bool:
    """In a Set-Cookie header (as sent, or unsigned) or in any session row."""
    for morsel in response.cookies.values():
        if secret in morsel.OutputString():
            return True
        try:
            if secret in _unsigned(morsel.value):
                return True
        except (ValueError, zlib.error):
            pass
    return any(secret in str(s.get_decoded()) or secret in _unsigned(s.session_data)
               for s in Session.objects.all())


def _shown_once(response, secret: str) -> None:
    assert response.status_code == 200
    assert secret in response.content.decode()
    assert b'id="shown-once"' in response.content
    assert "no-store" in response["Cache-Control"]
    assert not _stored_anywhere(response, secret)


@pytest.fixture
def owner(keys):
    client = Client()
    client.force_login(membership_add(account=keys.account, username="olive").user)
    return client


def test_webhook_secrets_are_shown_on_a_page_never_in_a_cookie(keys, owner, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = True
    changelist = reverse("admin:webhooks_endpoint_changelist")
    created = owner.post(reverse("admin:webhooks_endpoint_add"), {
        "account": keys.account.id, "url": "http://127.0.0.1:9/h", "description": "",
        "enabled_events": ["delivery.sent"], "is_active": "on"})
    endpoint = Endpoint.objects.get()
    secret = webhook_services.endpoint_secret_reveal(endpoint=endpoint)
    _shown_once(created, secret)

    assert "reveal_secret" not in owner.get(changelist).content.decode()  # shown once only

    rotated = owner.post(changelist, {"action": "rotate_secret",
                                      "_selected_action": [str(endpoint.id)]})
    new = webhook_services.endpoint_secret_reveal(endpoint=Endpoint.objects.get())
    assert new != secret
    _shown_once(rotated, new)
    after = owner.get(changelist)  # nothing was left behind to show later
    assert secret not in after.content.decode() and new not in after.content.decode()


def test_new_api_keys_are_shown_on_a_page_never_in_the_session(db):
    from django.contrib.auth.models import User

    accounts = [account_create(name=f"Org {n}").account for n in range(3)]
    user = User.objects.create_user("multi", is_staff=True)
    for account in accounts:
        membership_add(account=account, username="multi", role="owner")
    client = Client()
    client.force_login(user)
    response = client.post(reverse("admin:accounts_account_changelist"), {
        "action": "create_live_admin_key",
        "_selected_action": [str(a.id) for a in accounts]})
    raws = re.findall(r"<code>(live_[A-Za-z0-9_-]+)</code>", response.content.decode())
    assert len(raws) == 3
    assert ApiKey.objects.filter(is_admin=True, name__endswith="by multi").count() == 3
    for raw in raws:
        _shown_once(response, raw)
        assert _bearer(raw).get("/v1/webhooks").status_code == 200


# --- Slack -----------------------------------------------------------------------------------

TOKEN = "xoxb-1234-5678-VERYSECRET"


def test_a_bot_token_with_a_line_break_is_refused_at_save(keys, settings):
    settings.HERALD_PROVIDER_API_BASE_OVERRIDE = False
    for token in (TOKEN + "\nX", TOKEN + " ", "Bearer " + TOKEN, "xoxb-é"):
        with pytest.raises(HeraldError) as refused:
            channels.integration_save(account=keys.account, provider="slack", config={},
                                      credentials={"bot_token": token})
        assert refused.value.status == 400 and TOKEN not in str(refused.value)
    assert not Integration.objects.exists()


def test_a_stored_bad_token_makes_the_integration_unusable_without_quoting_it(keys, caplog):
    integration = Integration.objects.create(
        account=keys.account, channel="slack", provider="slack", config={},
        credentials_encrypted=crypto.encrypt_json({"bot_token": TOKEN + "\nX"}))
    message = ChannelMessage(delivery_id="d", channel="slack", to="U0123ABCD", title="t",
                             text="x")
    with caplog.at_level(logging.DEBUG):
        attempted = chain_send([Link("slack", integration.id,
                                     channels.adapter_for(integration))], message)
    assert isinstance(attempted.outcome, ProviderConfigurationError)
    assert "VERYSECRET" not in str(attempted.outcome) and "VERYSECRET" not in caplog.text


def test_a_slack_network_error_is_a_clean_transient_error(keys, settings, monkeypatch,
                                                          caplog):
    """The official client on its own urllib path (no api_base), Slack's name sent to a
    local port where nothing listens: a refused connection, not an AttributeError."""
    settings.HERALD_PROVIDER_API_BASE_OVERRIDE = False
    integration = channels.integration_save(account=keys.account, provider="slack", config={},
                                            credentials={"bot_token": TOKEN})
    port, real = free_port(), socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host == "slack.com":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    message = ChannelMessage(delivery_id="d", channel="slack", to="U0123ABCD", title="t",
                             text="x")
    with caplog.at_level(logging.DEBUG):
        attempted = chain_send([Link("slack", integration.id,
                                     channels.adapter_for(integration))], message)
    assert isinstance(attempted.outcome, ProviderTransientError), attempted.outcome
    assert str(attempted.outcome) == "Slack unreachable: Slack ECONNREFUSED"
    assert caplog.records and TOKEN not in caplog.text


def test_the_slack_clients_log_records_never_carry_the_token(caplog):
    """Whatever the SDK puts in a record (its errors quote the request's failure), the
    token is masked, in its plain and its escaped form."""
    provider = SlackProvider({}, {"bot_token": TOKEN}, timeout=2)
    with caplog.at_level(logging.DEBUG):
        provider.client._logger.error(f"Failed to send a request: {TOKEN}")
        provider.client._logger.error("header %r", f"Bearer {TOKEN}".encode())
    assert len(caplog.records) == 2 and TOKEN not in caplog.text
    assert "[bot token]" in caplog.records[0].getMessage()
