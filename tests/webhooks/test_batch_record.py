"""What a batch records: one attempt row per POST with what the receiver said, written by
the batch's own INSERT (which must name every column of ``Attempt``), even when the answer
holds bytes PostgreSQL text cannot store."""

import re

import pytest
from django.db import connection

from accounts.services import account_create
from tests.fakes.webhook_receiver import Answer, WebhookReceiver
from webhooks import delivery, services
from webhooks.models import Attempt, Message

pytestmark = pytest.mark.django_db


@pytest.fixture
def receiver(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = True
    settings.WEBHOOKS_RETRY_SCHEDULE = [0, 5]
    with WebhookReceiver() as server:
        yield server


def endpoint_with(receiver):
    keys = account_create(name="Acme Events")
    endpoint, secret = services.endpoint_create(account=keys.account, url=receiver.url)
    receiver.secret = secret
    return endpoint


def test_the_attempts_insert_names_every_column_of_attempt():
    named = re.search(r"\(([^)]*)\)", delivery._ATTEMPTS_SQL).group(1)
    columns = {c.strip() for c in named.split(",")}
    assert columns == {f.column for f in Attempt._meta.concrete_fields if not f.primary_key}


def test_each_post_is_recorded_with_what_the_receiver_said(
        receiver, django_capture_on_commit_callbacks):
    endpoint = endpoint_with(receiver)
    receiver.answer_with(Answer(status=200, body=b'{"ok":true}'))
    receiver.answer_with(Answer(status=500, body="d\u00e9j\u00e0 vu".encode()))
    receiver.answer_with(Answer(status=200, body=b"nul\x00byte \xff"))
    with django_capture_on_commit_callbacks(execute=False):
        ids = [services.endpoint_send_test(endpoint=endpoint).webhook_id for _ in range(3)]
    delivery.message_deliver(webhook_id=ids[0])
    attempts = list(Attempt.objects.order_by("id").values_list(
        "message__webhook_id", "endpoint_id", "url", "status_code", "response_body",
        "succeeded", "error"))
    assert attempts == [
        (ids[0], endpoint.id, endpoint.url, 200, '{"ok":true}', True, ""),
        (ids[1], endpoint.id, endpoint.url, 500, "d\u00e9j\u00e0 vu", False, ""),
        (ids[2], endpoint.id, endpoint.url, 200, "nul\ufffdbyte \ufffd", True, ""),
    ]
    assert all(a.duration_ms >= 0 and a.created_at for a in Attempt.objects.all())
    assert dict(Message.objects.values_list("webhook_id", "status")) == {
        ids[0]: "succeeded", ids[1]: "pending", ids[2]: "succeeded"}
    with connection.cursor() as cursor:  # the batch committed: nothing left claimed
        cursor.execute("SELECT count(*) FROM webhooks_message WHERE claimed_at IS NOT NULL")
        assert cursor.fetchone() == (0,)
