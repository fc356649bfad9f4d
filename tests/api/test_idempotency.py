"""Idempotency keys on every POST of every family (X-Idempotency-Key or Idempotency-Key)."""

import time
from datetime import timedelta

import pytest
from django.urls import path
from django.utils import timezone
from rest_framework.response import Response
from rest_framework.test import APIClient

from accounts.models import IdempotentRequest
from api import idempotency
from api.families import NOTIFICATIONS
from api.views import HeraldAPIView
from contacts.models import Contact
from guests.models import Attendee, Event
from tests.conftest import guest

EVENT = "/checkin/v1/api/event"


def _bearer(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def test_a_retry_replays_the_first_response_and_does_nothing_else(api):
    first = api.post(EVENT, {"name": "Gala"}, HTTP_X_IDEMPOTENCY_KEY="evt-1")
    again = api.post(EVENT, {"name": "Gala"}, HTTP_X_IDEMPOTENCY_KEY="evt-1")
    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert again["Content-Type"] == first["Content-Type"] == "application/json"
    assert again["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first
    assert Event.objects.count() == 1
    assert api.post(EVENT, {"name": "Gala"}).status_code == 201  # no key: runs again
    assert Event.objects.count() == 2


def test_the_standard_header_works_too_and_both_name_the_same_key(api):
    api.post(EVENT, {"name": "Gala"}, HTTP_IDEMPOTENCY_KEY="evt-2")
    again = api.post(EVENT, {"name": "Gala"}, HTTP_X_IDEMPOTENCY_KEY="evt-2")
    assert again["Idempotent-Replayed"] == "true" and Event.objects.count() == 1


@pytest.mark.parametrize(("headers", "field"), [
    ({"HTTP_X_IDEMPOTENCY_KEY": "k" * 256}, "X-Idempotency-Key"),
    ({"HTTP_IDEMPOTENCY_KEY": ""}, "Idempotency-Key"),
    ({"HTTP_IDEMPOTENCY_KEY": "a\nb"}, "Idempotency-Key"),
    ({"HTTP_IDEMPOTENCY_KEY": "a", "HTTP_X_IDEMPOTENCY_KEY": "b"}, "Idempotency-Key"),
])
def test_a_malformed_key_is_a_400_in_the_familys_shape(api, headers, field):
    response = api.post(EVENT, {"name": "Gala"}, **headers)
    assert response.status_code == 400
    assert response.json()["error"] == "validation_error" and field in response.json()["fields"]
    assert Event.objects.count() == 0
    assert api.post(EVENT, {"name": "Gala"}, HTTP_IDEMPOTENCY_KEY="k" * 255).status_code == 201


def test_the_same_key_on_another_request_is_refused_in_each_familys_shape(api, keys):
    # check-in & comms: 409 idempotency_key_reused, as the two-step send always answered.
    api.post(EVENT, {"name": "Gala"}, HTTP_IDEMPOTENCY_KEY="k")
    comms = api.post(EVENT, {"name": "Other"}, HTTP_IDEMPOTENCY_KEY="k")
    assert comms.status_code == 409 and comms.json()["error"] == "idempotency_key_reused"
    other_path = api.post("/comms/v1/api/comms/template", {}, HTTP_IDEMPOTENCY_KEY="k")
    assert other_path.status_code == 409

    v004 = _bearer(keys.live_key)
    v004.post("/v1/contacts", {"email": "a@example.com"}, format="json",
              HTTP_X_IDEMPOTENCY_KEY="c")
    reused = v004.post("/v1/contacts", {"email": "b@example.com"}, format="json",
                       HTTP_X_IDEMPOTENCY_KEY="c")
    assert reused.status_code == 422
    assert reused.json() == {"error": "This idempotency key was used for a different request.",
                             "code": "IDEMPOTENCY_KEY_REUSED"}
    assert Contact.objects.count() == 1

    v003 = _bearer(keys.live_key)
    v003.post("/v1/Brand/", {"Name": "A", "FromEmail": "a@example.com"}, format="json",
              HTTP_IDEMPOTENCY_KEY="b")
    reused = v003.post("/v1/Brand/", {"Name": "B", "FromEmail": "a@example.com"},
                       format="json", HTTP_IDEMPOTENCY_KEY="b")
    assert reused.status_code == 422 and set(reused.json()) == {"Error"}

    problem = _bearer(keys.admin_key)
    first = problem.post("/api/v1/communications/send", {}, format="json",
                         HTTP_IDEMPOTENCY_KEY="p")
    assert first.status_code == 400  # a refusal changed nothing: it is not stored
    again = problem.post("/api/v1/communications/send", {}, format="json",
                         HTTP_IDEMPOTENCY_KEY="p")
    assert again.status_code == 400 and "Idempotent-Replayed" not in again
    body = {"subject": "s", "body": "b", "channels": ["InApp"], "userId": "nobody-known"}
    problem.post("/api/v1/communications/send", {**body, "userId": "x"}, format="json",
                 HTTP_IDEMPOTENCY_KEY="q")
    reused = problem.post("/api/v1/communications/send", body, format="json",
                          HTTP_IDEMPOTENCY_KEY="q")
    assert reused.status_code in (400, 422)


def test_a_refusal_is_not_replayed_so_a_fixed_retry_runs(keys,
                                                       django_capture_on_commit_callbacks):
    v004 = _bearer(keys.live_key)
    missing = v004.post("/v1/send/order.confirmed", {"to": "a@example.com"}, format="json",
                        HTTP_X_IDEMPOTENCY_KEY="s")
    assert missing.status_code == 404 and missing.json()["code"] == "EVENT_NOT_FOUND"
    with django_capture_on_commit_callbacks(execute=True):
        v004.post("/v1/events", {"identifier": "order.confirmed", "channels": ["email"],
                                 "templates": [{"channel": "email", "subject": "Hi",
                                                "body": "Hello"}]}, format="json")
        sent = v004.post("/v1/send/order.confirmed", {"to": "a@example.com"}, format="json",
                         HTTP_X_IDEMPOTENCY_KEY="s")
    assert sent.status_code == 200, sent.content
    with django_capture_on_commit_callbacks(execute=True):
        replay = v004.post("/v1/send/order.confirmed", {"to": "a@example.com"},
                           format="json", HTTP_X_IDEMPOTENCY_KEY="s")
    assert replay["Idempotent-Replayed"] == "true" and replay.content == sent.content
    from comms.models import Delivery

    assert Delivery.objects.count() == 1  # the replay sent nothing new


def test_keys_are_scoped_per_account_and_per_key_mode(api, sandbox_api, other_api, event_id):
    # Guests, not events: a test key may add a guest but never an event (configuration).
    theirs = other_api.post(EVENT, {"name": "Theirs"}).json()["id"]
    for client, event in ((api, event_id), (sandbox_api, event_id), (other_api, theirs)):
        response = client.post("/checkin/v1/api/guest", guest(event),
                               HTTP_IDEMPOTENCY_KEY="shared")
        assert response.status_code == 200 and "Idempotent-Replayed" not in response
    assert Attendee.objects.count() == 3


def test_refusals_that_a_retry_may_overturn_are_not_stored(api, event_id, template_id):
    body = guest(event_id)
    api.post("/checkin/v1/api/guest", body)
    account = api.keys.account
    account.verified_for_sending = False
    account.save()
    send = {"attendeeId": body["id"], "templateId": template_id}
    refused = api.post("/comms/v1/api/comms/send", send, HTTP_IDEMPOTENCY_KEY="s")
    assert refused.status_code == 403
    account.verified_for_sending = True
    account.save()
    sent = api.post("/comms/v1/api/comms/send", send, HTTP_IDEMPOTENCY_KEY="s")
    assert sent.status_code == 200 and "Idempotent-Replayed" not in sent


def test_get_requests_ignore_the_key(api, event_id):
    first = api.get(f"{EVENT}/{event_id}", HTTP_IDEMPOTENCY_KEY="g")
    again = api.get(f"{EVENT}/{event_id}", HTTP_IDEMPOTENCY_KEY="g")
    assert first.status_code == again.status_code == 200
    assert "Idempotent-Replayed" not in again
    assert not IdempotentRequest.objects.exists()


def test_a_key_expires_after_24_hours(api, monkeypatch):
    api.post(EVENT, {"name": "Gala"}, HTTP_IDEMPOTENCY_KEY="old")
    IdempotentRequest.objects.update(created_at=timezone.now() - timedelta(hours=24, seconds=1))
    again = api.post(EVENT, {"name": "Gala"}, HTTP_IDEMPOTENCY_KEY="old")
    assert again.status_code == 201 and "Idempotent-Replayed" not in again
    assert Event.objects.count() == 2
    # The periodic sweep (at most once a minute per process) deletes every expired row.
    IdempotentRequest.objects.update(created_at=timezone.now() - timedelta(hours=25))
    monkeypatch.setattr(idempotency, "_last_sweep", 0.0)
    api.post(EVENT, {"name": "Gala"}, HTTP_IDEMPOTENCY_KEY="new")
    assert list(IdempotentRequest.objects.values_list("key", flat=True)) == ["new"]


# A view of this module's own (pytest.mark.urls): it crashes, answers 5xx, or asks itself
# again while it runs, to see what the layer does then.
class Probe(HeraldAPIView):
    family = NOTIFICATIONS
    calls: list[str] = []
    nested: list = []

    def post(self, request):
        self.calls.append(request.data["do"])
        if request.data["do"] == "crash" and len(self.calls) == 1:
            raise RuntimeError("boom")
        if request.data["do"] == "slow":
            time.sleep(0.5)  # long enough for concurrent retries to find it running
        if request.data["do"] == "5xx" and len(self.calls) == 1:
            return Response({"error": "down", "code": "SERVER_ERROR"}, status=503)
        if request.data["do"] == "nest" and len(self.calls) == 1:
            retry = APIClient()
            retry.credentials(HTTP_AUTHORIZATION=request.META["HTTP_AUTHORIZATION"])
            self.nested.append(retry.post("/probe", request.data, format="json",
                                          HTTP_IDEMPOTENCY_KEY="n"))
        return Response({"calls": len(self.calls)}, status=201)


urlpatterns = [path("probe", Probe.as_view())]


@pytest.fixture
def probe(keys):
    Probe.calls, Probe.nested = [], []
    return _bearer(keys.live_key)


@pytest.mark.urls(__name__)
@pytest.mark.parametrize("do", ["crash", "5xx"])
def test_a_crash_or_a_5xx_releases_the_key_so_a_retry_runs(probe, do):
    if do == "crash":
        with pytest.raises(RuntimeError):
            probe.post("/probe", {"do": do}, format="json", HTTP_IDEMPOTENCY_KEY=do)
    else:
        assert probe.post("/probe", {"do": do}, format="json",
                          HTTP_IDEMPOTENCY_KEY=do).status_code == 503
    retry = probe.post("/probe", {"do": do}, format="json", HTTP_IDEMPOTENCY_KEY=do)
    assert retry.status_code == 201 and retry.json() == {"calls": 2}
    assert "Idempotent-Replayed" not in retry


@pytest.mark.urls(__name__)
def test_a_retry_while_the_first_request_runs_gets_409_retry_after(probe):
    first = probe.post("/probe", {"do": "nest"}, format="json", HTTP_IDEMPOTENCY_KEY="n")
    assert first.status_code == 201 and Probe.calls == ["nest"]
    (nested,) = Probe.nested
    assert nested.status_code == 409 and nested["Retry-After"] == "1"
    assert nested.json()["code"] == "CONFLICT"
    after = probe.post("/probe", {"do": "nest"}, format="json", HTTP_IDEMPOTENCY_KEY="n")
    assert after["Idempotent-Replayed"] == "true" and after.json() == {"calls": 1}


@pytest.mark.urls(__name__)
def test_a_request_that_never_finished_stops_blocking_its_key_after_the_lease(probe, settings):
    probe.post("/probe", {"do": "ok"}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    # As if the process had been killed mid-request: the claim without a response.
    IdempotentRequest.objects.update(status=None)
    assert probe.post("/probe", {"do": "ok"}, format="json",
                      HTTP_IDEMPOTENCY_KEY="k").status_code == 409
    lease = settings.HERALD_IDEMPOTENCY_LEASE_SECONDS
    IdempotentRequest.objects.update(created_at=timezone.now() - timedelta(seconds=lease + 1))
    retry = probe.post("/probe", {"do": "ok"}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert retry.status_code == 201 and retry.json() == {"calls": 2}


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_key_run_once(keys):
    from tests.conftest import concurrently, make_client

    responses = concurrently(16, lambda i: make_client(keys).post(
        EVENT, {"name": "Race"}, format="json", HTTP_X_IDEMPOTENCY_KEY="race"))
    assert Event.objects.count() == 1
    assert {r.status_code for r in responses} <= {201, 409}
    created = [r for r in responses if r.status_code == 201]
    assert len({r.content for r in created}) == 1
    assert sum("Idempotent-Replayed" not in r for r in created) == 1
    assert all(r["Retry-After"] == "1" for r in responses if r.status_code == 409)
    assert IdempotentRequest.objects.get().status == 201


@pytest.mark.urls(__name__)
@pytest.mark.django_db(transaction=True)
def test_retries_while_a_slow_request_runs_get_409_and_it_runs_once(probe, keys):
    from tests.conftest import concurrently

    responses = concurrently(8, lambda i: _bearer(keys.live_key).post(
        "/probe", {"do": "slow"}, format="json", HTTP_IDEMPOTENCY_KEY="slow"))
    assert Probe.calls == ["slow"]
    assert sorted(r.status_code for r in responses) == [201] + [409] * 7
    assert all(r["Retry-After"] == "1" for r in responses if r.status_code == 409)


# --- secrets are never stored in clear for replay (issue 15, item 9) ---------------------

WEBHOOK = {"url": "https://93.184.215.14/webhooks/herald", "enabled_events": ["delivery.sent"]}


def _stored_bodies() -> list[bytes]:
    return [bytes(body) for body in IdempotentRequest.objects.values_list("body", flat=True)]


def test_a_webhook_secret_is_stored_encrypted_and_the_retry_gets_it_back(keys):
    client = _bearer(keys.live_key)
    first = client.post("/v1/webhooks", WEBHOOK, format="json", HTTP_IDEMPOTENCY_KEY="wh-1")
    assert first.status_code == 201, first.content
    secret = first.json()["webhook"]["signing_secret"]
    assert secret.startswith("whsec_")
    [stored] = _stored_bodies()
    assert b"whsec_" not in stored and secret.encode() not in stored
    assert b"signing_secret" not in stored  # the whole response is sealed, not one field
    again = client.post("/v1/webhooks", WEBHOOK, format="json", HTTP_IDEMPOTENCY_KEY="wh-1")
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()


def test_a_rotated_secret_is_stored_encrypted_too(keys):
    client = _bearer(keys.live_key)
    webhook = client.post("/v1/webhooks", WEBHOOK, format="json").json()["webhook"]
    path = f"/v1/webhooks/{webhook['uuid']}/rotate-secret"
    rotated = client.post(path, HTTP_X_IDEMPOTENCY_KEY="rotate-1")
    assert rotated.status_code == 200, rotated.content
    secret = rotated.json()["webhook"]["signing_secret"]
    assert secret != webhook["signing_secret"]
    assert all(secret.encode() not in body and b"whsec_" not in body
               for body in _stored_bodies())
    replay = client.post(path, HTTP_X_IDEMPOTENCY_KEY="rotate-1")
    assert replay["Idempotent-Replayed"] == "true"
    assert replay.json()["webhook"]["signing_secret"] == secret  # not rotated a second time


def test_a_stored_response_unreadable_after_a_key_change_is_a_409_not_a_second_run(
        api, settings):
    api.post(EVENT, {"name": "Gala"}, HTTP_X_IDEMPOTENCY_KEY="evt-sealed")
    settings.HERALD_ENCRYPTION_KEY = "another key"
    again = api.post(EVENT, {"name": "Gala"}, HTTP_X_IDEMPOTENCY_KEY="evt-sealed")
    assert again.status_code == 409
    assert again.json()["error"] == "idempotency_response_unreadable"
    assert Event.objects.count() == 1
