"""The engine's intake: a front end's ``Message`` becomes a queued delivery, many of them in
one statement (``messages_queue``), with what the ORM's insert would have stored."""

import itertools

from comms.messages import Message
from comms.models import Delivery, Status
from comms.services import message_row, messages_queue
from templates.services import template_create


def _template(account):
    return template_create(account=account, name="Ticket", subject="Hi {{ firstName }}",
                           html_body="<p>Hi</p>", text_body="Hi")


def test_a_batch_stores_each_message_as_the_orm_would(keys, django_assert_num_queries):
    template = _template(keys.account)
    messages = [Message(account_id=keys.account.id, mode="live", recipient=f"g{n}@example.com",
                        template_id=template.id, context={"firstName": f"G{n}"},
                        to_name=f"G{n}", sender={"email": "a@example.com", "name": "A"},
                        refs={"guestId": str(n)}, correlation_id="c")
                for n in range(3)]
    with django_assert_num_queries(1):
        ids = messages_queue(messages)
    rows = {d.id: d for d in Delivery.objects.filter(id__in=ids)}
    for n, pk in enumerate(ids):
        row, expected = rows[pk], message_row(messages[n])
        assert row.context == expected.context == {
            "firstName": f"G{n}", "_to_name": f"G{n}",
            "_sender": {"email": "a@example.com", "name": "A"}}
        assert (row.recipient, row.refs, row.status, row.template_version, row.channel) == (
            f"g{n}@example.com", {"guestId": str(n)}, Status.QUEUED, None, "email")
        assert row.created_at is not None and row.correlation_id == "c"


def test_given_content_is_version_0_and_callable_defaults_are_per_row(keys, monkeypatch):
    counter = itertools.count()
    field = Delivery._meta.get_field("provider_message_id")
    monkeypatch.setattr(field, "default", lambda: f"m{next(counter)}")
    monkeypatch.setattr(field, "_get_default", field.default, raising=False)
    ids = messages_queue([Message(account_id=keys.account.id, mode="test", channel="sms",
                                  recipient="+15550100", text="Hello") for _ in range(3)])
    rows = Delivery.objects.filter(id__in=ids)
    assert sorted(r.provider_message_id for r in rows) == ["m0", "m1", "m2"]
    assert {(r.template_version, r.text_body, r.mode, r.context) for r in rows} == {
        (0, "Hello", "test", None)}


def test_a_requests_id_is_bound_once_for_the_whole_batch(keys):
    """request_id's default is the request's id, the same for every row: one parameter,
    not a value in each row's JSON record."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from common import request_id

    with request_id.bound("req-batch-1"), CaptureQueriesContext(connection) as queries:
        ids = messages_queue([Message(account_id=keys.account.id, mode="test", channel="sms",
                                      recipient=f"+1555010{n}", text="Hi", context={"n": n})
                              for n in range(3)])
    [insert] = [q["sql"] for q in queries if q["sql"].startswith("INSERT")]
    assert "req-batch-1" not in insert.split("json_to_recordset")[1]
    assert set(Delivery.objects.filter(id__in=ids).values_list("request_id", flat=True)) == {
        "req-batch-1"}


def test_a_batch_of_one_message_is_inserted(keys):
    """Every column of a single row is the same 'in every row': the id stays per row, so the
    JSON record is never empty."""
    [delivery_id] = messages_queue([Message(account_id=keys.account.id, mode="test",
                                            channel="sms", recipient="+15550100", text="Hi")])
    assert Delivery.objects.get(id=delivery_id).recipient == "+15550100"
