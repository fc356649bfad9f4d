"""Outbound requests an account can steer (issue 15, item 1).

An FCM key file's ``token_uri`` (and its other URLs), an integration's ``api_base`` or
``endpoint_url``: each is refused at save and again at use unless it is Google's (or the
platform's development switch allows other hosts), and every request goes through the SSRF
guard to the address it vetted. Whatever a vendor (or a hostile server posing as one)
answers reaches the tenant only as ``vendor_reason``'s status and short code: never in a
delivery's error, its trace, the spec-002 answer or an exception text.
"""

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
import requests
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import Membership
from accounts.services import membership_add
from common import http, ssrf
from common.errors import HeraldError
from comms import channels
from comms.dispatch import delivery_dispatch
from comms.models import Delivery, DeliveryEvent, Integration
from comms.providers.base import ChannelMessage, ProviderConfigurationError, ProviderError
from comms.providers.fcm import GOOGLE_TOKEN_URIS
from comms.providers.vendor_http import vendor_reason
from tests.fakes.http_host import FakeHost, TrackedHandler
from tests.fakes.push_api import FakeFcm, make_service_account

SECRET = "SECRET-METADATA-TOKEN"
TOKEN = "dQw4w9WgXcQ:APA91bH-abcdefghijklmnopqrstuvwxyz_0123456789"
# Every field some vendor's error parser reads, each carrying the secret.
HOSTILE_JSON = {
    "error": {"message": SECRET, "status": SECRET, "code": SECRET,
              "details": [{"errorCode": SECRET}]},
    "error_description": SECRET, "message": SECRET, "description": SECRET, "detail": SECRET,
    "errors": [{"message": SECRET, "field": SECRET, "code": SECRET}], "ok": False,
    "code": SECRET, "more_info": SECRET,
}


class _HostileHandler(TrackedHandler):
    def _answer(self) -> None:
        fake: Hostile = self.server.fake
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with fake.lock:
            fake.requests.append(f"{self.command} {self.path}")
        body = fake.body
        self.send_response(fake.status)
        self.send_header("Content-Type", fake.content_type)
        if 300 <= fake.status < 400:
            self.send_header("Location", fake.location)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = _answer


class Hostile(FakeHost):
    """An "internal service" (a metadata endpoint) that answers everything with a secret."""

    handler: type[BaseHTTPRequestHandler] = _HostileHandler

    def __init__(self, status: int = 400, body: Any = HOSTILE_JSON) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.requests: list[str] = []
        self.status = status
        self.location = "http://169.254.169.254/latest/meta-data/"
        self.content_type = "application/json" if isinstance(body, dict) else "text/plain"
        self.body = (json.dumps(body) if isinstance(body, dict) else body).encode()


@pytest.fixture
def hostile() -> Iterator[Hostile]:
    with Hostile() as server:
        yield server


def _key(token_uri: str, **extra: str) -> str:
    """A service account key file (a real RSA key) whose token_uri is ``token_uri``."""
    with FakeFcm() as fake:
        info = json.loads(make_service_account(fake, register=False))
    return json.dumps({**info, "token_uri": token_uri, **extra})


def _fcm_save(keys, token_uri: str, **config: str) -> Integration:
    return channels.integration_save(
        account=keys.account, provider="fcm", config=config,
        credentials={"service_account_json": _key(token_uri)})


def _owner(keys) -> Client:
    membership = membership_add(account=keys.account, username="olive",
                                role=Membership.Role.OWNER)
    client = Client()
    client.force_login(membership.user)
    return client


def _spec002(keys, django_capture_on_commit_callbacks, channel: str = "Push") -> dict:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {keys.admin_key}")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/api/v1/communications/send", {
            "subject": "Doors", "body": "Doors open at 7.", "channels": [channel],
            "pushToken": TOKEN, "phoneNumber": "+97455555555", "isHtml": False,
        }, format="json")
    # Every channel failed: problem details (400) carrying the results.
    assert response.status_code == 400, response.content
    return response.json()


# --- at save --------------------------------------------------------------------------------

INTERNAL_TOKEN_URIS = [
    "http://127.0.0.1:8080/computeMetadata/v1/instance/service-accounts/default/token",
    "http://169.254.169.254/computeMetadata/v1/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "https://oauth2.googleapis.com.evil.example/token",
    "https://oauth2.googleapis.com/token/../../internal",
    "http://oauth2.googleapis.com/token",  # not https
    "https://oauth2.googleapis.com:8443/token",
]


@pytest.mark.parametrize("token_uri", INTERNAL_TOKEN_URIS)
def test_a_key_file_whose_token_uri_is_not_googles_is_refused_at_save(keys, settings,
                                                                       token_uri):
    settings.HERALD_PROVIDER_API_BASE_OVERRIDE = False
    with pytest.raises(HeraldError, match="token_uri must be Google's") as caught:
        _fcm_save(keys, token_uri)
    assert caught.value.status == 400
    assert not Integration.objects.exists()


@pytest.mark.parametrize("field", ["auth_uri", "client_x509_cert_url",
                                   "auth_provider_x509_cert_url", "anything_url"])
def test_other_urls_of_a_key_file_must_be_googles(keys, settings, field):
    settings.HERALD_PROVIDER_API_BASE_OVERRIDE = False
    with pytest.raises(HeraldError, match=f"{field} must be an https URL of Google's"):
        channels.integration_save(account=keys.account, provider="fcm", config={},
                                  credentials={"service_account_json": _key(
                                      "https://oauth2.googleapis.com/token",
                                      **{field: "http://169.254.169.254/latest/"})})
    assert not Integration.objects.exists()


@pytest.mark.parametrize("token_uri", sorted(GOOGLE_TOKEN_URIS))
def test_googles_token_endpoints_are_accepted(keys, settings, token_uri):
    settings.HERALD_PROVIDER_API_BASE_OVERRIDE = False
    assert _fcm_save(keys, token_uri).provider == "fcm"


def test_the_admin_form_shows_the_refusal_and_stores_nothing(keys, settings):
    settings.HERALD_PROVIDER_API_BASE_OVERRIDE = False
    response = _owner(keys).post(reverse("admin:comms_integration_add"), {
        "account": str(keys.account.id), "provider": "fcm", "priority": 0, "is_active": "on",
        "config": "{}",
        "credentials": json.dumps({"service_account_json": _key(INTERNAL_TOKEN_URIS[0])}),
    })
    assert response.status_code == 200
    assert b"token_uri must be Google&#x27;s token endpoint" in response.content
    assert not Integration.objects.exists()


@pytest.mark.parametrize(("provider", "config"), [
    ("fcm", {"project_id": "p/../../../v1/projects/other"}),
    ("fcm", {"project_id": "p?x=1#"}),
    ("twilio", {"api_base": "file:///etc/passwd", "from_number": "+15005550006"}),
    ("slack", {"api_base": "gopher://127.0.0.1:6379/_FLUSHALL"}),
    ("sns", {"endpoint_url": "http://user:pw@127.0.0.1:1/"}),
    ("telegram", {"api_base": "http://a b/"}),
])
def test_host_overrides_are_urls_the_guard_parses_even_under_the_switch(keys, provider, config):
    with pytest.raises(HeraldError) as caught:
        channels.integration_save(account=keys.account, provider=provider, config=config,
                                  credentials={})
    assert caught.value.status == 400
    assert not Integration.objects.exists()


# --- at use ---------------------------------------------------------------------------------


def test_a_key_saved_before_the_rule_is_refused_at_use_and_never_called(
        keys, settings, hostile, django_capture_on_commit_callbacks):
    """Saved while the development switch was on (or before the rule): once it is off, the
    web process (spec 002) never calls the saved token_uri."""
    _fcm_save(keys, f"{hostile.url}/computeMetadata/v1/token")
    settings.HERALD_PROVIDER_API_BASE_OVERRIDE = False
    [result] = _spec002(keys, django_capture_on_commit_callbacks)["results"]
    assert result["success"] is False
    assert "token_uri must be Google's" in result["error"]
    assert hostile.requests == []


def test_a_host_override_saved_before_the_rule_makes_the_integration_unusable(
        keys, settings, hostile):
    """The worker refuses it too, instead of calling it (or silently going elsewhere)."""
    channels.integration_save(
        account=keys.account, provider="twilio",
        config={"api_base": hostile.url, "from_number": "+15005550006"},
        credentials={"account_sid": "AC1", "auth_token": "t"})
    settings.HERALD_PROVIDER_API_BASE_OVERRIDE = False
    delivery = Delivery.objects.create(account=keys.account, channel="sms",
                                       recipient="+97455555555", subject="s",
                                       text_body="t", template_version=0)
    delivery_dispatch(delivery_id=str(delivery.id))
    delivery.refresh_from_db()
    assert delivery.failure_type == "integration_error"
    assert "HERALD_PROVIDER_API_BASE_OVERRIDE" in delivery.failure_reason
    assert hostile.requests == []


def _resolving(monkeypatch, answers: dict[str, list[str]]) -> list[str]:
    """The system resolver answering ``answers`` (name → addresses, one per lookup, the last
    repeated) for those names; returns the names looked up, in order."""
    real, looked_up = socket.getaddrinfo, []

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in answers:
            return real(host, port, *args, **kwargs)
        looked_up.append(host)
        queue = answers[host]
        address = queue.pop(0) if len(queue) > 1 else queue[0]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return looked_up


def test_googles_token_endpoint_resolving_to_an_internal_address_is_refused_at_use(
        keys, settings, monkeypatch, django_capture_on_commit_callbacks):
    """The allow-listed name itself is vetted when used: a resolver (or rebinding) that
    sends it to 127.0.0.1 gets no request."""
    settings.HERALD_PROVIDER_API_BASE_OVERRIDE = False
    _fcm_save(keys, "https://oauth2.googleapis.com/token")
    looked_up = _resolving(monkeypatch, {"oauth2.googleapis.com": ["127.0.0.1"]})
    [result] = _spec002(keys, django_capture_on_commit_callbacks)["results"]
    assert result["success"] is False
    assert result["error"] == f"FCM token_uri refused: {ssrf.NOT_PUBLIC}"
    assert looked_up == ["oauth2.googleapis.com"]


def test_the_pinned_client_connects_to_the_address_it_vetted(monkeypatch, hostile):
    """One lookup per request: a second answer (rebinding to where nothing is vetted) is
    never asked for, so the request goes to the vetted address."""
    hostile.status, hostile.body = 200, b'{"ok": true}'
    looked_up = _resolving(monkeypatch, {"rebind.test": ["127.0.0.1", "127.0.0.2"]})
    session = http.pinned_session(allow_private=True)
    response = session.post(f"http://rebind.test:{hostile.port}/x", json={}, timeout=5)
    assert response.status_code == 200 and hostile.requests == ["POST /x"]
    assert looked_up == ["rebind.test"]  # a lookup of its own would have said 127.0.0.2
    looked_up = _resolving(monkeypatch, {"again.test": ["127.0.0.1", "127.0.0.2"]})
    answer = http.request("POST", f"http://again.test:{hostile.port}/y", json_body={},
                          headers={}, timeout=5, allow_private=True)
    assert answer.status == 200 and hostile.requests == ["POST /x", "POST /y"]
    assert looked_up == ["again.test"]


def test_the_pinned_client_refuses_internal_names_and_follows_no_redirect(hostile):
    with pytest.raises(http.RefusedRequest, match="not a public internet address"):
        http.pinned_session(allow_private=False).post(f"http://localhost:{hostile.port}/",
                                                      timeout=5)
    with pytest.raises(http.Refused, match="not a public internet address"):
        http.request("GET", f"http://localhost:{hostile.port}/", headers={}, timeout=5,
                     allow_private=False)
    assert hostile.requests == []
    hostile.status = 307
    with pytest.raises(requests.TooManyRedirects):
        http.pinned_session(allow_private=True).post(hostile.url, timeout=5)
    assert len(hostile.requests) == 1


def test_no_provider_follows_a_redirect(keys, settings, hostile):
    """A vendor URL answering 302 to an internal address: no provider goes there (the
    SDKs' own clients, urllib and requests, would have followed it)."""
    settings.HERALD_PROVIDER_TIMEOUT_SECONDS = 3
    with Hostile(200, {"ok": True}) as internal:
        hostile.status, hostile.location = 302, f"{internal.url}/latest/meta-data/"
        for integration, message in _integrations(keys, hostile.url):
            with pytest.raises((ProviderError, ProviderConfigurationError)):
                channels.adapter_for(integration).send(message)
        assert len(hostile.requests) >= 8
        assert internal.requests == []


# --- what a tenant sees of an answer ----------------------------------------------------------


def _message(channel: str, to: str) -> ChannelMessage:
    return ChannelMessage(delivery_id="d-1", channel=channel, to=to, title="Doors",
                          text="Doors open at 7.")


def _integrations(keys, url: str) -> list[tuple[Integration, ChannelMessage]]:
    """Every channel provider pointed at ``url`` (the development switch is on in tests)."""
    made = [
        (channels.integration_save(account=keys.account, provider="fcm",
                                   config={"api_base": url},
                                   credentials={"service_account_json": _key(f"{url}/t")}),
         _message("push", TOKEN)),
        (channels.integration_save(account=keys.account, provider="expo",
                                   config={"api_base": url}, credentials={}),
         _message("push", "ExponentPushToken[abc]")),
        (channels.integration_save(account=keys.account, provider="twilio",
                                   config={"api_base": url, "from_number": "+15005550006"},
                                   credentials={"account_sid": "AC1", "auth_token": "t"}),
         _message("sms", "+97455555555")),
        (channels.integration_save(account=keys.account, provider="sns",
                                   config={"endpoint_url": url, "region": "us-east-1"},
                                   credentials={"access_key_id": "k",
                                                "secret_access_key": "s"}),
         _message("sms", "+97455555555")),
    ]
    for provider, channel, to in (("slack", "slack", "U0123ABCD"),
                                  ("discord", "discord", "123456789"),
                                  ("telegram", "telegram", "123456789"),
                                  ("whatsapp_cloud", "whatsapp", "+97455555555")):
        config = {"api_base": url}
        if provider == "whatsapp_cloud":
            config["phone_number_id"] = "1234"
        credential = "access_token" if provider == "whatsapp_cloud" else "bot_token"
        token = "1:abc" if provider == "telegram" else "xoxb-1"
        made.append((channels.integration_save(account=keys.account, provider=provider,
                                               config=config, credentials={credential: token}),
                     _message(channel, to)))
    return made


@pytest.mark.parametrize(("status", "body"), [
    (400, HOSTILE_JSON), (401, HOSTILE_JSON), (429, HOSTILE_JSON), (500, HOSTILE_JSON),
    (200, HOSTILE_JSON), (400, f"{SECRET}\n"), (503, f"<html>{SECRET}</html>"),
])
def test_no_provider_lets_an_answer_body_into_its_error(keys, settings, status, body):
    settings.HERALD_PROVIDER_TIMEOUT_SECONDS = 3
    with Hostile(status, body) as server:
        for integration, message in _integrations(keys, server.url):
            adapter = channels.adapter_for(integration)
            try:
                result = adapter.send(message)
            except ProviderError as exc:
                text = f"{exc} {exc!r}"
            except ProviderConfigurationError as exc:
                text = f"{exc} {exc!r}"
            else:
                text = repr(result)
            assert SECRET not in text, (integration.provider, text)
            assert "\n" not in text, (integration.provider, text)
        assert len(server.requests) >= 8  # each provider did reach the server


def test_the_answer_never_reaches_the_tenant_from_the_web_process_or_the_worker(
        keys, settings, hostile, django_capture_on_commit_callbacks):
    """The finding itself, under the development switch that lets the key reach a local
    "metadata service": spec 002's answer, the deliveries, their timelines and the v004
    trace carry no byte of what it answered."""
    _fcm_save(keys, f"{hostile.url}/computeMetadata/v1/token")
    answer = _spec002(keys, django_capture_on_commit_callbacks)
    [result] = answer["results"]
    assert result == {"channel": "Push", "success": False,
                      "error": "Google rejected the FCM service account (OAuth)."}
    queued = Delivery.objects.create(account=keys.account, channel="push", recipient=TOKEN,
                                     subject="s", text_body="t", template_version=0)
    delivery_dispatch(delivery_id=str(queued.id))  # the worker's path
    assert len(hostile.requests) >= 2
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {keys.live_key}")
    seen = [json.dumps(answer)]
    for delivery in Delivery.objects.all():
        seen.append(f"{delivery.failure_reason} {delivery.failure_type}")
        seen.append(client.get(f"/v1/deliveries/{delivery.id}/trace").content.decode())
        seen.append(client.get(f"/v1/deliveries/{delivery.id}").content.decode())
    seen.extend(json.dumps(e.detail) for e in DeliveryEvent.objects.all())
    assert Delivery.objects.filter(status="failed").count() == 2
    assert not [text for text in seen if SECRET in text]


def test_vendor_reason_keeps_status_and_a_short_code_only():
    assert vendor_reason("FCM", 404, "UNREGISTERED") == "FCM 404 UNREGISTERED"
    assert vendor_reason("Twilio", 400, 21211) == "Twilio 400 21211"
    assert vendor_reason("SendGrid", 400, "personalizations.0.to.0.email") == (
        "SendGrid 400 personalizations.0.to.0.email")
    for free_text in (SECRET, "The token is not valid", "a\nb", "x" * 41, "<b>", "a/b", None):
        assert vendor_reason("Slack", 400, free_text) == "Slack 400"
    assert vendor_reason("Slack\r\n", None, "") == "Slack"
    assert len(vendor_reason("V" * 500, 500, "CODE")) == 120
