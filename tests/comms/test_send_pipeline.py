"""The send task against the real `sendgrid` client and a local fake SendGrid server:
rendering, what SendGrid receives, transient retries with backoff, permanent failures."""

import asyncio
import threading
import time
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from comms.models import Delivery, DeliveryEvent
from comms.outcomes import retry_delay
from comms.tasks import send_delivery
from tests.comms import test_ses as test_ses
from tests.conftest import guest


def _send(api, event_id, template_id, **fields):
    response = api.post("/checkin/v1/api/guest", guest(event_id, template_id, **fields))
    assert response.status_code == 200, response.content
    return Delivery.objects.get(id=response.json()["attendeeInvitationId"])


def test_ticket_reaches_sendgrid_rendered(api, sendgrid, event_id, template_id):
    delivery = _send(api, event_id, template_id)
    assert delivery.status == "sent"
    [message] = sendgrid.messages
    body = message.body
    assert body["subject"] == "Your ticket for Spring Gala"
    assert body["personalizations"][0]["to"] == [{"email": "jane@example.com",
                                                  "name": "Jane Smith"}]
    assert body["personalizations"][0]["custom_args"] == {
        "herald_delivery_id": str(delivery.id)}
    assert body["from"]["email"] == "tickets@herald.localhost"
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    assert delivery.provider == "sendgrid"
    assert delivery.provider_message_id == message.message_id


def test_merge_tokens_are_html_escaped_in_html_only(api, sendgrid, event_id, template_id):
    _send(api, event_id, template_id, firstName="<b>Jo</b>")
    body = sendgrid.messages[0].body
    assert "Hi &lt;b&gt;Jo&lt;/b&gt;" in body["content"][1]["value"]
    assert "Hi <b>Jo</b>" in body["content"][0]["value"]


def test_transient_errors_retry_then_send(api, sendgrid, event_id, template_id):
    sendgrid.fail_next(2, 500)
    delivery = _send(api, event_id, template_id)
    assert delivery.status == "sent"
    assert delivery.attempts == 3
    assert sendgrid.attempts == 3 and len(sendgrid.messages) == 1
    retries = DeliveryEvent.objects.filter(delivery=delivery, name="comms.retry_scheduled")
    assert [e.detail["attempt"] for e in retries] == [1, 2]


def test_transient_errors_exhaust_into_failed(api, sendgrid, settings, event_id, template_id):
    settings.HERALD_SEND_MAX_ATTEMPTS = 3
    sendgrid.fail_next(5, 503)
    delivery = _send(api, event_id, template_id)
    assert delivery.status == "failed"
    assert delivery.failure_type == "transient"
    assert delivery.failure_reason.startswith("Transient API-side failure after 3 attempts")
    assert sendgrid.attempts == 3 and sendgrid.messages == []
    assert DeliveryEvent.objects.filter(delivery=delivery, name="comms.failed").count() == 1


def test_timeout_is_transient(api, sendgrid, settings, event_id, template_id):
    settings.HERALD_PROVIDER_TIMEOUT_SECONDS = 0.2
    settings.HERALD_SEND_MAX_ATTEMPTS = 1
    sendgrid.set_delay(1.0)
    delivery = _send(api, event_id, template_id)
    assert delivery.status == "failed"
    assert delivery.failure_type == "transient"


def test_rate_limit_honours_reset_header(api, sendgrid, event_id, template_id):
    import time

    sendgrid.fail_next(1, 429, headers={"X-RateLimit-Limit": "600",
                                        "X-RateLimit-Remaining": "0",
                                        "X-RateLimit-Reset": str(int(time.time()) + 120)})
    delivery = _send(api, event_id, template_id)
    retry = DeliveryEvent.objects.get(delivery=delivery, name="comms.retry_scheduled")
    assert retry.detail["retryInSeconds"] >= 110
    assert delivery.status == "queued"  # not due yet: nothing may claim it early
    assert delivery.next_attempt_at >= timezone.now() + timedelta(seconds=110)
    send_delivery.delay(str(delivery.id))  # a stray task (redelivery, sweeper) does nothing
    delivery.refresh_from_db()
    assert delivery.status == "queued" and sendgrid.attempts == 1


def test_permanent_error_fails_at_once(api, sendgrid, event_id, template_id):
    sendgrid.fail_next(1, 400, body={"errors": [{"message": "Invalid from address",
                                                 "field": "from.email", "help": None}]})
    delivery = _send(api, event_id, template_id)
    assert delivery.status == "failed"
    assert delivery.failure_type == "provider_rejected"
    assert delivery.failure_reason == "SendGrid 400 from.email"  # the message: logged only
    assert delivery.attempts == 1


def test_wrong_api_key_is_a_configuration_error_and_keeps_the_delivery(
        api, sendgrid, settings, caplog, event_id, template_id):
    settings.SENDGRID_API_KEY = "SG.wrong"
    delivery = _send(api, event_id, template_id)
    assert delivery.status == "queued"  # released for the sweeper once the key is fixed
    assert "rejected the API key" in caplog.text


def test_retry_delay_grows_exponentially_with_jitter(settings):
    settings.HERALD_RETRY_BASE_SECONDS = 10
    settings.HERALD_RETRY_MAX_SECONDS = 3600
    for attempt, ceiling in [(1, 10), (2, 20), (3, 40), (10, 3600)]:
        delays = {retry_delay(attempt=attempt, retry_after=None) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1
    assert retry_delay(attempt=1, retry_after=300) >= 300


def test_template_that_fails_at_render_time_fails_the_delivery(api, sendgrid, event_id):
    template = api.post("/comms/v1/api/comms/template", {
        "name": "bad", "subject": "x", "textBody": "{{ 1 / 0 }}"}).json()
    delivery = _send(api, event_id, template["id"])
    assert delivery.status == "failed"
    assert delivery.failure_type == "template_error"
    assert sendgrid.attempts == 0


def _queue_lost(api, event_id, template_id, n, **fields):
    """n sends whose on-commit tasks are dropped: queued rows waiting for any worker."""
    ids = []
    for i in range(n):
        body = guest(event_id, template_id, firstName=f"Guest{i}", email=f"g{i}@example.com",
                     **fields)
        ids.append(api.client.post("/checkin/v1/api/guest", body, format="json")
                   .json()["attendeeInvitationId"])
    return ids


def test_one_task_drains_due_deliveries_in_one_sendgrid_request(api, sendgrid, event_id,
                                                                 template_id):
    ids = _queue_lost(api, event_id, template_id, 5)
    send_delivery.delay(ids[2])
    assert sendgrid.attempts == 1
    [request] = sendgrid.messages
    personalizations = request.body["personalizations"]
    assert len(personalizations) == 5
    by_id = {p["custom_args"]["herald_delivery_id"]: p for p in personalizations}
    assert set(by_id) == set(ids)
    first = Delivery.objects.get(id=ids[0])
    assert by_id[ids[0]]["substitutions"]["%herald:subject%"] == first.subject
    assert "Hi Guest0," in by_id[ids[0]]["substitutions"]["%herald:text%"]
    assert set(Delivery.objects.values_list("status", flat=True)) == {"sent"}
    assert DeliveryEvent.objects.filter(name="comms.sent").count() == 5
    send_delivery.delay(ids[0])  # its own task comes later and finds nothing to do
    assert sendgrid.attempts == 1


def test_a_batch_refused_as_invalid_is_resent_one_by_one(api, sendgrid, event_id,
                                                         template_id):
    ids = _queue_lost(api, event_id, template_id, 3)
    sendgrid.fail_next(2, 400)  # the batch and the first single message are refused
    send_delivery.delay(ids[0])
    statuses = dict(Delivery.objects.values_list("id", "status"))
    assert sorted(statuses.values()) == ["failed", "sent", "sent"]
    assert sendgrid.attempts == 4


def test_batch_size_setting_bounds_a_claim_and_a_full_claim_kicks_the_next(
        api, sendgrid, settings, event_id, template_id):
    settings.HERALD_DISPATCH_BATCH_SIZE = 2
    ids = _queue_lost(api, event_id, template_id, 5)
    send_delivery.delay(ids[4])  # its own row and the oldest, then a kick per full claim
    batches = [{p["custom_args"]["herald_delivery_id"] for p in m.body["personalizations"]}
               for m in sendgrid.messages]
    assert sorted(map(sorted, batches)) == sorted(
        map(sorted, [{ids[4], ids[0]}, {ids[1], ids[2]}, {ids[3]}]))
    assert Delivery.objects.filter(status="sent").count() == 5


def test_a_batch_reads_its_template_once_and_no_guest_or_event(api, sendgrid, event_id,
                                                                template_id):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    ids = _queue_lost(api, event_id, template_id, 5)
    with CaptureQueriesContext(connection) as queries:
        send_delivery.delay(ids[0])
    assert Delivery.objects.filter(status="sent").count() == 5
    reads = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT")]
    assert sum('FROM "templates_messagetemplate"' in sql for sql in reads) == 1
    # The engine renders with the context the guests front end stored: no front-end rows.
    assert not any('"guests_event"' in sql or '"guests_attendee"' in sql for sql in reads)
    rows = [sql for sql in reads if 'FROM "comms_delivery"' in sql]
    assert not any("templates_messagetemplate" in sql for sql in rows)  # no copy per row


def test_a_batch_records_its_sent_events_in_one_statement(api, sendgrid, event_id, template_id):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    ids = _queue_lost(api, event_id, template_id, 5)
    with CaptureQueriesContext(connection) as queries:
        send_delivery.delay(ids[0])
    inserts = [q["sql"] for q in queries.captured_queries
               if q["sql"].startswith("INSERT") and "comms_deliveryevent" in q["sql"]]
    assert len(inserts) == 1 and "json_to_recordset" in inserts[0]
    events = DeliveryEvent.objects.filter(name="comms.sent").order_by("id")
    assert sorted(str(e.delivery_id) for e in events) == sorted(ids)
    first = events.get(delivery_id=ids[0])
    sent = Delivery.objects.get(id=ids[0])
    assert first.status == "sent" and first.correlation_id == sent.correlation_id
    assert first.detail == {"provider": "sendgrid", "messageId": sent.provider_message_id}
    assert first.occurred_at == sent.sent_at


def test_content_postgresql_cannot_store_is_replaced_not_sent_again(api, sendgrid, event_id):
    """A NUL or a lone surrogate in the rendered content would make the ``sent`` write fail
    after SendGrid accepted the message, and the batch would go again: they become U+FFFD."""
    template = api.post("/comms/v1/api/comms/template", {
        "name": "odd", "subject": r'Hi{{ "\x00" }}',
        "textBody": r'a{{ "\x00" }}b{{ "\ud800" }}c'}).json()
    delivery = _send(api, event_id, template["id"])
    assert delivery.status == "sent"
    assert (delivery.subject, delivery.text_body) == ("Hi\ufffd", "a\ufffdb\ufffdc")
    assert sendgrid.attempts == 1 and len(sendgrid.messages) == 1


# --- a lost database connection, and the window of a worker's death ------------------------

def _rows(api, template_id, n: int) -> list[Delivery]:
    """Queued deliveries without a task (a transactional test would run on-commit sends)."""
    return [Delivery.objects.create(account=api.keys.account, template_id=template_id,
                                    recipient=f"g{i}@example.com") for i in range(n)]


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _other_connection(**options: Any) -> psycopg.Connection:
    db = connection.settings_dict
    return psycopg.connect(host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432,
                           user=db["USER"], password=db["PASSWORD"] or None,
                           dbname=db["NAME"], **options)


def _until(check, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.django_db(transaction=True)
def test_a_connection_lost_after_the_provider_accepted_is_recorded_on_a_new_one(
        api, sendgrid, template_id):
    """The worker's connection is cut (pg_terminate_backend) while SendGrid holds its batch:
    the batch was accepted, so it is recorded on a fresh connection, not resent later."""
    from comms.dispatch import delivery_dispatch

    rows = _rows(api, template_id, 3)
    pid = _backend_pid()
    sendgrid.set_delay(0.5)

    def cut() -> None:
        _until(lambda: sendgrid.messages)
        with _other_connection(autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s)", [pid])

    cutter = threading.Thread(target=cut)
    cutter.start()
    delivery_dispatch(delivery_id=str(rows[0].id))
    cutter.join()
    assert _backend_pid() != pid, "the connection really was cut"
    assert set(Delivery.objects.values_list("status", flat=True)) == {"sent"}
    assert DeliveryEvent.objects.filter(name="comms.sent").count() == 3
    assert sendgrid.attempts == 1


@pytest.mark.django_db(transaction=True)
def test_rows_claimed_before_a_lost_connection_go_back_to_the_queue_at_once(
        api, sendgrid, template_id):
    """The connection is cut after the claim, before any provider call (the worker waits on
    a lock): the claimed rows are handed back, without using an attempt, and sent by the
    kick that goes with them instead of waiting out the lease."""
    from django.db import OperationalError

    from comms.dispatch import delivery_dispatch

    rows = _rows(api, template_id, 3)
    pid = _backend_pid()
    locker = _other_connection()
    locker.execute("LOCK TABLE comms_suppression IN ACCESS EXCLUSIVE MODE")

    def cut() -> None:
        with _other_connection(autocommit=True) as watcher:
            _until(lambda: watcher.execute(
                "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND wait_event_type = 'Lock'",
                [pid]).fetchone())
            watcher.execute("SELECT pg_terminate_backend(%s)", [pid])
        locker.rollback()

    cutter = threading.Thread(target=cut)
    cutter.start()
    try:
        with pytest.raises(OperationalError):
            delivery_dispatch(delivery_id=str(rows[0].id))
    finally:
        cutter.join()
        locker.close()
    assert list(Delivery.objects.values_list("status", "attempts").distinct()) == [("sent", 1)]
    assert sendgrid.attempts == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("every", "seen"), [(1, [0, 1, 2, 3]), (2, [0, 0, 2, 2]),
                                             (100, [0, 0, 0, 0])])
def test_smtp_records_its_messages_in_groups_of_at_most_send_record_every(
        api, smtp, template_id, settings, every, seen):
    """No reconciliation exists for SMTP: a worker that dies mid-batch leaves at most
    HERALD_SEND_RECORD_EVERY accepted messages unrecorded (sent again after the lease), so a
    group is recorded before the next group is sent."""
    from comms.dispatch import delivery_dispatch

    settings.HERALD_SEND_RECORD_EVERY = every
    rows = _rows(api, template_id, 4)
    recorded_before: list[int] = []
    accept = smtp.handle_DATA

    def sent_so_far() -> int:
        try:
            return Delivery.objects.filter(status="sent").count()
        finally:
            connection.close()

    async def handle_DATA(server, session, envelope):
        recorded_before.append(await asyncio.to_thread(sent_so_far))
        return await accept(server, session, envelope)

    smtp.handle_DATA = handle_DATA
    delivery_dispatch(delivery_id=str(rows[0].id))
    assert recorded_before == seen
    assert set(Delivery.objects.values_list("status", flat=True)) == {"sent"}


@pytest.mark.django_db(transaction=True)
def test_a_slow_smtp_batch_hands_back_its_rest_before_the_lease_ends(api, smtp, settings,
                                                                      template_id):
    """A server slower than the lease allows for a whole batch: after half the lease the
    worker hands the rest back (and kicks a task to take them), so no message goes out after
    its claim expired, when the sweeper would let another worker send it too."""
    from comms.dispatch import delivery_dispatch

    settings.HERALD_SENDING_LEASE_SECONDS = 1
    rows = _rows(api, template_id, 5)
    accept = smtp.handle_DATA

    async def handle_DATA(server, session, envelope):
        await asyncio.sleep(0.3)
        return await accept(server, session, envelope)

    smtp.handle_DATA = handle_DATA
    delivery_dispatch(delivery_id=str(rows[0].id))
    sent = Delivery.objects.filter(id__in=[r.id for r in rows])
    assert list(sent.values_list("status", "attempts").distinct()) == [("sent", 1)]
    assert len(smtp.messages) == 5
    assert max(d.sent_at - d.claimed_at for d in sent) < timedelta(seconds=1)
    assert len({d.claimed_at for d in sent}) > 1, "the rest went out under a new claim"


# SES's fixtures (moto with Herald's sending domain verified).
aws, ses = test_ses.aws, test_ses.ses


def test_ses_records_each_message_before_the_next_call(api, ses, settings, template_id):
    """SES takes one message per call: each is recorded as soon as SES accepted it, so a
    worker that dies mid-batch leaves at most one accepted message unrecorded."""
    from comms.dispatch import delivery_dispatch
    from comms.providers.ses import SesConfig, ses_client

    rows = _rows(api, template_id, 4)
    client = ses_client(SesConfig(
        region=settings.HERALD_SES_REGION, endpoint_url=settings.HERALD_SES_ENDPOINT_URL,
        configuration_set=settings.HERALD_SES_CONFIGURATION_SET,
        timeout=settings.HERALD_PROVIDER_TIMEOUT_SECONDS))
    recorded_before: list[int] = []

    def count(**_: Any) -> None:  # botocore's hook before each SendEmail request
        recorded_before.append(Delivery.objects.filter(status="sent").count())

    client.meta.events.register("before-call.sesv2.SendEmail", count)
    try:
        delivery_dispatch(delivery_id=str(rows[0].id))
    finally:
        client.meta.events.unregister("before-call.sesv2.SendEmail", count)
    assert recorded_before == [0, 1, 2, 3]
    assert len(test_ses.moto_sent()) == 4
