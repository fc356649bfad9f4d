"""Shared fixtures: accounts made through services, an API client per family, eager tasks."""

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import Account, Membership
from accounts.services import AccountKeys, account_create, membership_add
from comms.queueing import kick_taken
from config.celery import app as celery_app
from tests.fakes.sendgrid_api import FakeSendGrid
from tests.fakes.smtp_server import smtp  # noqa: F401 (the aiosmtpd fixture, for every module)

AWS_REGION = "us-east-1"


@pytest.fixture(autouse=True)
def eager_tasks(settings) -> Iterator[None]:
    """Tasks run in-process at enqueue time; the real-worker tests switch this off.

    Retries are due at once (no backoff) unless a test sets a delay: an eager task cannot
    wait for its countdown, and a delivery is only claimed once it is due.
    """
    settings.HERALD_RETRY_BASE_SECONDS = 0
    settings.HERALD_API_KEY_CACHE_SECONDS = 0  # tests change accounts and keys under way
    settings.HERALD_AUTH_FAILURE_LIMIT = 1000  # tests fail auth on purpose, all from 127.0.0.1
    settings.HERALD_PROVIDER_API_BASE_OVERRIDE = True  # providers' fake servers are local
    settings.HERALD_RATE_LIMIT_LIVE = settings.HERALD_RATE_LIMIT_TEST = settings.HERALD_DAILY_QUOTA_LIVE = settings.HERALD_DAILY_QUOTA_TEST = 0  # noqa: E501 - 0: no limits (tests of limits set their own)
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    kick_taken()  # no pending-kick marker left by an earlier test's lost task
    yield
    celery_app.conf.task_always_eager = False


@dataclass
class Api:
    """A client of the check-in & comms family that runs on-commit hooks like a real request."""

    client: APIClient
    keys: AccountKeys
    capture: Any

    def _call(self, method: str, path: str, body: Any = None, **headers: str):
        with self.capture(execute=True):
            return getattr(self.client, method)(path, body, format="json", **headers)

    def post(self, path: str, body: Any = None, **headers: str):
        return self._call("post", path, body, **headers)

    def put(self, path: str, body: Any = None, **headers: str):
        return self._call("put", path, body, **headers)

    def get(self, path: str, **headers: str):
        with self.capture(execute=True):
            return self.client.get(path, **headers)


def make_client(keys: AccountKeys, *, test_mode: bool = False) -> APIClient:
    client = APIClient()
    client.credentials(
        HTTP_AUTHORIZATION=f"Bearer {keys.test_key if test_mode else keys.live_key}",
        HTTP_OCP_APIM_SUBSCRIPTION_KEY=keys.subscription_key,
    )
    return client


@pytest.fixture
def keys(db) -> AccountKeys:
    return account_create(name="Acme Events")


@pytest.fixture
def api(keys, django_capture_on_commit_callbacks) -> Api:
    return Api(make_client(keys), keys, django_capture_on_commit_callbacks)


@pytest.fixture
def sandbox_api(keys, django_capture_on_commit_callbacks) -> Api:
    return Api(make_client(keys, test_mode=True), keys, django_capture_on_commit_callbacks)


@pytest.fixture
def other_api(db, django_capture_on_commit_callbacks) -> Api:
    other = account_create(name="Other Org")
    return Api(make_client(other), other, django_capture_on_commit_callbacks)


TICKET = {
    "name": "Ticket",
    "subject": "Your ticket for {{ event.name }}",
    "htmlBody": "<p>Hi {{ firstName }}, see you at {{ event.name }}.</p>",
    "textBody": "Hi {{ firstName }}, see you at {{ event.name }}.",
}


@pytest.fixture
def event_id(api) -> str:
    response = api.post("/checkin/v1/api/event", {"name": "Spring Gala"})
    assert response.status_code == 201, response.content
    return response.json()["id"]


@pytest.fixture
def template_id(api) -> str:
    response = api.post("/comms/v1/api/comms/template", TICKET)
    assert response.status_code == 201, response.content
    return response.json()["id"]


def member_client(account: Account, username: str, role: str = Membership.Role.STAFF, *,
                  csrf: bool = False) -> Client:
    """An admin client logged in as a new member of ``account`` with ``role``."""
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(membership_add(account=account, username=username, role=role).user)
    return client


def guest(event_id: str, template_id: str | None = None, **fields: Any) -> dict[str, Any]:
    body = {"id": str(uuid.uuid4()), "firstName": "Jane", "lastName": "Smith",
            "email": "jane@example.com", "eventId": event_id,
            "correlationId": "order-2026-0042"}
    if template_id:
        body["commsTemplateId"] = template_id
    body.update(fields)
    return body


@pytest.fixture
def sendgrid(settings) -> Iterator[FakeSendGrid]:
    """The fake SendGrid server, configured as the live provider (real `sendgrid` client)."""
    with FakeSendGrid(api_key="SG.herald-test") as server:
        settings.HERALD_EMAIL_PROVIDER = "sendgrid"
        settings.SENDGRID_API_KEY = server.api_key
        settings.SENDGRID_API_HOST = server.url
        settings.HERALD_PROVIDER_TIMEOUT_SECONDS = 2
        yield server


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """moto's server (AWS SES, SNS) on a free port, for boto3 clients pointed at it."""
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    with pytest.MonkeyPatch.context() as env:
        for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                            "AWS_SESSION_TOKEN": "testing",
                            "AWS_DEFAULT_REGION": AWS_REGION}.items():
            env.setenv(name, value)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
        server.stop()


def bulk_send_done(event_id: Any, template_id: Any, *, audience: str, mode: str, capture: Any):
    """A bulk send created (its on-commit hooks run) and run to its end, as the admin's."""
    from guests.bulk import bulk_send_create, bulk_send_run
    from guests.models import Event

    with capture(execute=True):
        job, _ = bulk_send_create(event=Event.objects.get(id=event_id), template_id=template_id,
                                  audience=audience, mode=mode, token=uuid.uuid4(), user=None)
    bulk_send_run(job_id=job.id)
    job.refresh_from_db()
    return job


def concurrently(n: int, call) -> list:
    """``call(i)`` for i in range(n) on n threads released together (a barrier), each on its
    own database connection; returns each result, or the exception it raised."""
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = call(i)
        except Exception as exc:  # surfaced by the callers' assertions
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
