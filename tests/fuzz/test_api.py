"""Schemathesis against the app's own OpenAPI (``/api/schema/``): every operation of every
family, with valid keys, must never answer 5xx, and what it answers must match the schema.

The schema is loaded from the WSGI app itself, so an endpoint added to any family is fuzzed
without touching this file. Half of the generated cases get the ids of real rows of the
caller's account (path parameters and the ids in JSON bodies), so the fuzzer also reaches
the code behind the 404s. Generation is derandomized: the same cases run on every machine.
"""

import itertools
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from accounts.services import account_create
from config.wsgi import application
from guests.services import attendee_create, event_create
from templates.services import template_create
from tests.comms.factories import suppression_add
from webhooks import services as webhook_services

SCHEMA_PATH = "/api/schema/?format=json"
schema = schemathesis.openapi.from_wsgi(SCHEMA_PATH, application)

# A public address (no DNS): endpoint creation passes the SSRF guard; nothing is ever sent,
# because on-commit hooks never run inside the test transaction.
PUBLIC_HOOK = "https://93.184.215.14/hooks/herald"
EXAMPLES = 30


def documented_success(ctx, response, case) -> bool | None:
    """A 2xx the schema does not list (e.g. 200 where it promises 204) is a schema lie that
    ``response_schema_conformance`` alone would skip."""
    if case.method.upper() != case.operation.method.upper():
        return None  # an unexpected method (OPTIONS, TRACE…) probed by the negative phase
    if 200 <= response.status_code < 300:
        documented = set(case.operation.definition.raw.get("responses", {}))
        if str(response.status_code) not in documented and "default" not in documented:
            raise AssertionError(
                f"{case.method} {case.path} answered {response.status_code}, but the schema "
                f"documents only {sorted(documented)}")
    return None


CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance,
          documented_success]


@pytest.fixture
def in_test_transaction() -> Iterator[None]:
    """Requests go straight to the WSGI app, whose request signals would close the test's
    database connection (and roll its transaction back, on PostgreSQL's pool): keep it open,
    as Django's own test client does."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def world(db, settings, in_test_transaction) -> dict[str, Any]:
    """One account with a row of every kind its endpoints take an id of."""
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = False
    keys = account_create(name="Fuzzed Org")
    account = keys.account
    event = event_create(account=account, name="Fuzz Gala")
    template = template_create(account=account, name="Fuzz", subject="Hi {{ firstName }}",
                               text_body="Hello {{ firstName }} at {{ event.name }}")
    attendee = attendee_create(account=account, mode="live", id=uuid.uuid4(),
                               event_id=event.id, email="fuzz@example.com",
                               comms_template_id=template.id, correlation_id="fuzz-1")
    suppression_add(account_id=account.id, address="blocked@example.com", reason="bounced")
    endpoint, _ = webhook_services.endpoint_create(account=account, url=PUBLIC_HOOK)
    message = webhook_services.endpoint_send_test(endpoint=endpoint)
    return {
        "keys": keys,
        "ids": {
            "event_id": str(event.id), "template_id": str(template.id),
            "attendee_id": str(attendee.attendee.id),
            "invitation_id": str(attendee.delivery_id),
            "email": "blocked@example.com", "webhook_uuid": str(endpoint.id),
            "message_id": message.webhook_id,
        },
        "body": {
            "eventId": str(event.id), "commsTemplateId": str(template.id),
            "attendeeId": str(attendee.attendee.id), "templateId": str(template.id),
        },
    }


_turn = itertools.count()


def _use_real_ids(case, world: dict[str, Any]) -> None:
    """Every other case: the path parameters and body ids of the caller's own rows."""
    if next(_turn) % 2:
        return
    for name in list(case.path_parameters or {}):
        if name in world["ids"]:
            case.path_parameters[name] = world["ids"][name]
    if isinstance(case.body, dict):
        for name, value in world["body"].items():
            if name in case.body:
                case.body[name] = value


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_every_operation_survives_fuzzing(case, world):
    _use_real_ids(case, world)
    keys = world["keys"]
    key = keys.admin_key if case.path.startswith("/api/v1/communications") else keys.live_key
    headers = {"Authorization": f"Bearer {key}",
               "Ocp-Apim-Subscription-Key": keys.subscription_key}
    case.call_and_validate(headers=headers, checks=CHECKS)


def test_the_fuzzer_sees_every_family():
    """The schema the fuzzer reads lists the endpoints of each family that exists."""
    paths = set(schema.raw_schema["paths"])
    for path in ["/checkin/v1/api/guest", "/checkin/v1/api/event/{event_id}",
                 "/comms/v1/api/comms/send", "/comms/v1/api/comms/template/{template_id}",
                 "/comms/v1/api/comms/suppression/{email}", "/v1/webhooks/{webhook_uuid}",
                 "/api/v1/communications/send", "/api/v1/communications/inapp",
                 "/v1/webhooks/{webhook_uuid}/messages/{message_id}/resend"]:
        assert path in paths
