"""An integrator's client, generated from Herald's OpenAPI schema with openapi-python-client,
runs the spec flows against a live server (#17): every request goes through the generated
functions and models, its credentials come from the schema's security schemes, no header or
HTTP call is written by hand, and every answer parses into the component the schema gives.

The operations are found by method and path, and the request models through the generated
functions' annotations, so the test reads the schema as an integrator does and does not break
when a component or an operationId is renamed.
"""

import importlib
import pkgutil
import subprocess
import sys
import types
import typing
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any

import attrs
import pytest
import yaml
from django.core.management import call_command

from accounts.services import AccountKeys, account_create
from tests.fakes.dns_server import local_dns_fixture, local_dns_server_fixture  # noqa: F401

PACKAGE = "herald_client"
PUBLIC_URL = "https://93.184.215.14/webhooks/herald"


@dataclass
class Generated:
    """The generated package and the schema it was generated from."""

    package: types.ModuleType
    schema: dict[str, Any]

    def module(self, method: str, path: str) -> types.ModuleType:
        from openapi_python_client.strings import PythonIdentifier

        operation = self.schema["paths"][path][method.lower()]
        name = PythonIdentifier(operation["operationId"], prefix="")
        api = importlib.import_module(f"{PACKAGE}.api")
        for tag in pkgutil.iter_modules(api.__path__):
            try:
                return importlib.import_module(f"{PACKAGE}.api.{tag.name}.{name}")
            except ModuleNotFoundError:
                continue
        raise AssertionError(f"no generated function for {method} {path} ({name})")


@pytest.fixture(scope="session")
def generated(tmp_path_factory) -> Iterator[Generated]:
    """The client, generated once per session as an integrator would: the schema file, then
    the generator's CLI (no formatter run; a generator warning is a failure)."""
    out = tmp_path_factory.mktemp("generated_client")
    schema = out / "schema.yaml"
    call_command("spectacular", "--file", str(schema))
    config = out / "config.yaml"
    config.write_text("post_hooks: []\n")
    run = subprocess.run(
        [sys.executable, "-m", "openapi_python_client", "generate", "--path", str(schema),
         "--output-path", str(out / PACKAGE), "--meta", "none", "--config", str(config),
         "--fail-on-warning"],
        capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    sys.path.insert(0, str(out))
    try:
        yield Generated(importlib.import_module(PACKAGE), yaml.safe_load(schema.read_text()))
    finally:
        sys.path.remove(str(out))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def _hints(cls: type) -> dict[str, Any]:
    models = importlib.import_module(f"{PACKAGE}.models")
    namespace = {**vars(sys.modules[cls.__module__]), **vars(models)}
    return typing.get_type_hints(cls, globalns=namespace)


def _build(kind: Any, value: Any) -> Any:
    """A generated model (or enum, or list of them) from plain values: declared fields by
    keyword (an unknown one is a TypeError, not a silent extra), free-form objects by
    ``from_dict``."""
    if value is None:
        return None
    members = typing.get_args(kind)
    if typing.get_origin(kind) is list:
        return [_build(members[0], item) for item in value]
    if members:  # a union: the one member this value can be
        for member in members:
            origin = typing.get_origin(member) or member
            if isinstance(value, dict) and attrs.has(origin):
                return _build(member, value)
            if isinstance(value, list) and origin is list:
                return _build(member, value)
            if isinstance(value, str) and isinstance(origin, type) and issubclass(origin, Enum):
                return origin(value)
        return value
    if isinstance(kind, type) and issubclass(kind, Enum):
        return kind(value)
    if attrs.has(kind) and isinstance(value, dict):
        declared = [f.name for f in attrs.fields(kind) if f.name != "additional_properties"]
        if not declared:
            return kind.from_dict(value)
        hints = _hints(kind)
        return kind(**{name: _build(hints[name], item) for name, item in value.items()})
    return value


@dataclass
class Herald:
    """One account's integrator: calls an operation through its generated function, with a
    client built from the operation's security requirement in the schema."""

    generated: Generated
    base_url: str
    keys: AccountKeys

    def client(self, method: str, path: str, key: str) -> Any:
        schema = self.generated.schema
        schemes = schema["components"]["securitySchemes"]
        [requirement, *_] = schema["paths"][path][method.lower()]["security"]
        token, headers = None, {}
        for name in requirement:
            scheme = schemes[name]
            if scheme["type"] == "http" and scheme["scheme"] == "bearer":
                token = key
            elif scheme["type"] == "apiKey" and scheme["in"] == "header":
                headers[scheme["name"]] = self.keys.subscription_key
            else:
                raise AssertionError(f"security scheme {name} is not one Herald offers")
        assert token is not None, f"{method} {path} requires no bearer key: {requirement}"
        client_class = self.generated.package.AuthenticatedClient
        return client_class(base_url=self.base_url, token=token, headers=headers,
                            raise_on_unexpected_status=True, timeout=30)

    def call(self, route: str, *, key: str | None = None, body: dict | None = None,
             **params: Any) -> Any:
        """``route`` is "METHOD /path"; ``body`` holds the request model's fields by their
        Python names; path and query parameters go through by name."""
        method, path = route.split(" ", 1)
        function = self.generated.module(method, path).sync_detailed
        if body is not None:
            params["body"] = _build(function.__annotations__["body"], body)
        client = self.client(method, path, key or self.keys.live_key)
        return function(client=client, **params)


@pytest.fixture
def herald(generated, live_server, keys, settings) -> Herald:
    settings.HERALD_SANDBOX_DELAY_SECONDS = 0
    return Herald(generated, live_server.url, keys)


def _undeclared(value: Any, where: str = "body") -> list[str]:
    """Keys of an answer its schema component does not declare (free-form maps aside)."""
    if isinstance(value, list):
        return [key for n, item in enumerate(value) for key in _undeclared(item, f"{where}[{n}]")]
    if not attrs.has(type(value)):
        return []
    declared = [f.name for f in attrs.fields(type(value)) if f.name != "additional_properties"]
    if not declared:
        return []
    extra = [f"{where}.{key}" for key in getattr(value, "additional_properties", {})]
    return extra + [key for name in declared
                    for key in _undeclared(getattr(value, name), f"{where}.{name}")]


def ok(response: Any, status: int = 200) -> Any:
    """The answer parsed into its documented component, every key of it declared there."""
    assert response.status_code == status, (response.status_code, response.content)
    assert response.parsed is not None
    assert _undeclared(response.parsed) == [], response.content
    return response.parsed


TICKET = {"name": "Ticket", "subject": "Your ticket for {{ event.name }}",
          "html_body": "<p>Hi {{ firstName }}, see you at {{ event.name }}.</p>",
          "text_body": "Hi {{ firstName }}, see you at {{ event.name }}."}


def event_and_template(herald: Herald) -> tuple[Any, Any]:
    event = ok(herald.call("POST /checkin/v1/api/event", body={"name": "Spring Gala"}), 201)
    template = ok(herald.call("POST /comms/v1/api/comms/template", body=TICKET), 201)
    assert event.name == "Spring Gala" and template.name == "Ticket"
    return event.id, template.id


def guest(event_id: Any, email: str, **fields: Any) -> dict[str, Any]:
    return {"id": uuid.uuid4(), "first_name": "Jane", "last_name": "Smith", "email": email,
            "event_id": event_id, "correlation_id": "order-2026-0042", **fields}


def test_event_template_and_atomic_guest_with_its_ticket(herald):
    event_id, template_id = event_and_template(herald)
    body = guest(event_id, "jane@example.com", comms_template_id=template_id)

    created = ok(herald.call("POST /checkin/v1/api/guest", body=body))

    assert created.id == body["id"] and created.event_id == event_id
    assert created.attendee_invitation_id is not None
    ticket = ok(herald.call("GET /comms/v1/api/comms/send/{invitation_id}",
                            invitation_id=created.attendee_invitation_id))
    assert ticket.attendee_id == body["id"] and ticket.template_id == template_id
    assert ticket.recipient == "jane@example.com" and ticket.status.value == "sent"
    again = ok(herald.call("GET /checkin/v1/api/guest/{attendee_id}", attendee_id=body["id"]))
    assert again.email == "jane@example.com"


def test_two_step_send_and_its_422_parsed(herald, keys):
    event_id, template_id = event_and_template(herald)  # configuration: the live key
    body = guest(event_id, "bounce@example.com")
    ok(herald.call("POST /checkin/v1/api/guest", key=keys.test_key, body=body))
    send = {"attendee_id": body["id"], "template_id": template_id,
            "correlation_id": "resend-2026-0042"}

    retry_key = str(uuid.uuid4())
    first = ok(herald.call("POST /comms/v1/api/comms/send", key=keys.test_key, body=send,
                           x_idempotency_key=retry_key))
    assert first.status == "queued" and first.attendee_invitation_id
    replay = herald.call("POST /comms/v1/api/comms/send", key=keys.test_key, body=send,
                         x_idempotency_key=retry_key)
    assert ok(replay).attendee_invitation_id == first.attendee_invitation_id
    assert replay.headers["Idempotent-Replayed"] == "true"
    refused = herald.call("POST /comms/v1/api/comms/send", key=keys.test_key, body=send,
                          idempotency_key=str(uuid.uuid4()))

    assert refused.status_code == 422
    rejection = refused.parsed
    assert rejection.error == "previous_send_permanently_failed"
    assert rejection.failure_type.value == "bounced"
    assert rejection.last_failure_reason == "550 5.1.1 No such user"
    assert rejection.last_failure_at.tzinfo is not None
    assert rejection.message == "Previous send bounced — resending will not help."


def test_domain_create_then_validate_once_its_records_are_published(herald, local_dns):
    created = ok(herald.call("POST /comms/v1/api/comms/domain",
                             body={"domain": "mail.example.com"}))
    assert created.domain == "mail.example.com" and created.verified is False
    assert len(created.dns_records) == 3
    for record in created.dns_records:
        local_dns.add(record.host, record.type_.upper(), record.data)

    validated = ok(herald.call("POST /comms/v1/api/comms/domain/validate"))

    assert validated.verified is True and validated.enabled is True
    assert all(record.valid for record in validated.dns_records)
    assert ok(herald.call("GET /comms/v1/api/comms/domain")).id == created.id


def test_multichannel_send_reports_each_channel(herald, keys):
    response = herald.call("POST /api/v1/communications/send", key=keys.admin_key, body={
        "subject": "System maintenance",
        "body": "A scheduled maintenance window starts at 22:00 UTC.",
        "channels": ["Email", "Sms", "InApp"], "email_address": "user@example.com",
        "phone_number": "+97455555555", "user_id": "3f45ef0f-39d1-4d65-8eaa-5db7c0b8f763",
        "push_token": None, "webhook_url": None, "is_html": False})

    results = {str(r.channel): r for r in ok(response).results}
    assert results["Email"].success is True and results["Email"].error is None
    assert results["Sms"].success is False and results["Sms"].error
    assert results["InApp"].error == "User not found"


def test_email_send_and_history_pages_with_next(herald):
    brand = ok(herald.call("POST /v1/Brand/", body={
        "name": "Photo Co", "from_name": "Photo Co", "from_email": "hello@photo.example"}), 201)
    brand_id = brand.brand.brand_id
    messages = [{"to": f"guest{n}@example.com", "type_": "token", "brand_id": brand_id,
                 "token": "abcde", "num_photos": 10} for n in range(3)]

    sent = ok(herald.call("POST /v1/Email/", body={"messages": messages}))
    ids = [result.message_id for result in sent.results]
    assert len(ids) == 3 and all(ids)

    first = ok(herald.call("GET /v1/Email/", limit=2))
    assert len(first.emails) == 2 and first.next_
    second = ok(herald.call("GET /v1/Email/", limit=2, next_=first.next_))
    assert second.next_ is None
    paged = [email.message_id for email in [*first.emails, *second.emails]]
    assert sorted(map(str, paged)) == sorted(map(str, ids))


def test_contact_upsert_creates_then_updates(herald):
    created = herald.call("POST /v1/contacts", body={"email": "jane@example.com",
                                                     "name": "Jane"})
    contact = ok(created, 201).contact
    updated = herald.call("POST /v1/contacts", body={"email": "JANE@example.com",
                                                     "phone": "+14155552671"})

    again = ok(updated, 200).contact
    assert again.uuid == contact.uuid and again.name == "Jane"
    assert again.phone == "+14155552671"


ORDER = {
    "identifier": "order.confirmed", "name": "Order confirmed", "channels": ["email"],
    "default_language": "en",
    "templates": [{"channel": "email", "language": "en",
                   "subject": "Order {{payload.orderNumber}} confirmed",
                   "body": "Hi {{name | Guest}}, order {{payload.orderNumber}}."}],
}


def test_notification_event_create_and_send(herald):
    created = ok(herald.call("POST /v1/events", body=ORDER), 201)
    assert created.data.event.identifier == "order.confirmed"

    response = herald.call("POST /v1/send/{event}/{channel}", event="order.confirmed",
                           channel="email", body={
                               "to": {"email": "ann@example.com", "name": "Ann"},
                               "payload": {"orderNumber": "ORD-123"}})

    result = ok(response)
    assert result.success is True
    [delivery] = result.deliveries
    assert delivery.email


def test_webhook_create_shows_its_secret_once(herald):
    response = herald.call("POST /v1/webhooks", body={
        "url": PUBLIC_URL, "enabled_events": ["delivery.sent", "delivery.failed"],
        "description": "Production webhook"})

    webhook = ok(response, 201).webhook
    assert webhook.url == PUBLIC_URL and webhook.is_active is True
    assert webhook.signing_secret.startswith("whsec_")


@pytest.mark.parametrize("route", [
    "GET /checkin/v1/api/event", "GET /comms/v1/api/comms/template", "GET /v1/Email/",
    "GET /v1/contacts", "GET /v1/webhooks", "GET /v1/events",
])
def test_a_wrong_key_is_a_documented_401(herald, route):
    """Every family documents its 401, so the generated client parses it."""
    response = herald.call(route, key="hk_live_not-a-key")

    assert response.status_code == 401
    assert response.parsed is not None


# --- the errors an integrator met undeclared: each parses into its family's error model ----

def refused(response: Any, status: int, component: str) -> Any:
    """An error answer parsed into the component the schema declares for it."""
    assert response.status_code == status, (response.status_code, response.content)
    models = importlib.import_module(f"{PACKAGE}.models")
    assert isinstance(response.parsed, getattr(models, component)), response.content
    return response.parsed


def test_a_send_naming_ids_the_account_does_not_have_is_a_documented_404(herald):
    event_id, template_id = event_and_template(herald)
    unknown = uuid.uuid4()
    attempts = [
        ("POST /checkin/v1/api/guest",
         guest(event_id, "jane@example.com", comms_template_id=unknown), "template_not_found"),
        ("POST /checkin/v1/api/guest", guest(unknown, "jane@example.com"), "event_not_found"),
        ("POST /comms/v1/api/comms/send", {"attendee_id": unknown, "template_id": template_id},
         "attendee_not_found"),
    ]
    for route, body, code in attempts:
        error = refused(herald.call(route, body=body), 404, "CommsError")
        assert (error.error, bool(error.message)) == (code, True)


@pytest.fixture
def unverified(herald) -> Herald:
    """An account an administrator has not verified for sending yet."""
    keys = account_create(name="Not Yet Verified", verified_for_sending=False)
    return Herald(herald.generated, herald.base_url, keys)


def test_an_account_not_verified_for_sending_gets_documented_403s(unverified):
    event_id, template_id = event_and_template(unverified)
    guest_create = unverified.call("POST /checkin/v1/api/guest", body=guest(
        event_id, "jane@example.com", comms_template_id=template_id))
    send = unverified.call("POST /comms/v1/api/comms/send", body={
        "attendee_id": uuid.uuid4(), "template_id": template_id})
    email = unverified.call("POST /v1/Email/", body={"messages": [{
        "to": "guest@example.com", "type_": "token", "brand_id": uuid.uuid4(),
        "token": "abcde", "num_photos": 1}]})

    for response in (guest_create, send):
        assert refused(response, 403, "CommsError").error == "account_not_verified"
    assert "not verified" in refused(email, 403, "ErrorOut").error


@pytest.mark.parametrize("route", [
    "GET /comms/v1/api/comms/domain", "POST /comms/v1/api/comms/domain/validate",
    "POST /comms/v1/api/comms/domain/activate", "POST /comms/v1/api/comms/domain/deactivate",
    "DELETE /comms/v1/api/comms/domain",
])
def test_no_domain_yet_is_a_documented_404(herald, route):
    assert refused(herald.call(route), 404, "CommsError").error == "domain_not_found"


def test_multichannel_send_failing_on_every_channel_declares_its_results(herald, keys):
    response = herald.call("POST /api/v1/communications/send", key=keys.admin_key, body={
        "subject": "System maintenance", "body": "A window starts at 22:00 UTC.",
        "channels": ["InApp"], "user_id": str(uuid.uuid4()), "is_html": False})

    problem = refused(response, 400, "SendProblemDetails")
    assert (problem.status, problem.title) == (400, "Dispatch failed")
    [result] = problem.results
    assert (str(result.channel), result.success, result.error) == ("InApp", False,
                                                                   "User not found")
    assert _undeclared(problem) == []
