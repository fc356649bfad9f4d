"""Spec 003 at volume: keyset paging through 10,000 emails while more arrive, and a batch of
1,000 messages in a bounded number of queries."""

import math

from celery.signals import task_prerun

from comms.models import Delivery, Status
from emails.services import emails_send
from tests.emails.test_api import brand_id, token_message


def _send(keys, brand: str, count: int, prefix: str) -> list[str]:
    """Through the service, 1,000 at a time (the API's batch), not one request per email."""
    ids: list[str] = []
    for start in range(0, count, 1000):
        messages = [token_message(brand, to=f"{prefix}{n}@example.com")
                    for n in range(start, min(count, start + 1000))]
        results = emails_send(account=keys.account, mode="live", messages=messages)
        assert {r.status for r in results} == {200}
        ids += [str(r.message_id) for r in results]
    return ids


def test_next_pages_through_10000_emails_exactly_once_while_more_arrive(api, keys):
    brand = brand_id(api)
    other = brand_id(api, Name="Other brand")
    existing = _send(keys, brand, 10_000, "guest")
    _send(keys, other, 50, "elsewhere")
    seen: list[str] = []
    arrived: list[str] = []
    params = {"Limit": 700, "BrandId": brand}
    pages = 0
    while True:
        response = api.client.get("/v1/Email/", params)
        assert response.status_code == 200, response.content
        body = response.json()
        seen += [e["MessageId"] for e in body["Emails"]]
        pages += 1
        # New emails of the same brand arrive between pages; they come before the cursor.
        arrived += _send(keys, brand, 3, f"late{pages}-")
        if body["Next"] is None:
            break
        params = {"Next": body["Next"], "Limit": 700}
    assert pages == math.ceil(10_000 / 700)
    assert len(seen) == len(set(seen)) == 10_000
    assert set(seen) == set(existing)
    assert not set(seen) & set(arrived)


def test_a_batch_of_1000_costs_a_bounded_number_of_queries(
        api, keys, django_assert_max_num_queries):
    brand = brand_id(api)
    api.post("/v1/Email/", {"Messages": [token_message(brand)]})  # default template exists
    messages = [token_message(brand, to=f"guest{n}@example.com") for n in range(1000)]
    messages[10] = token_message(brand, to="broken")
    # Auth, brands, templates, two bulk inserts and the transaction around them.
    with django_assert_max_num_queries(8):
        response = api.client.post("/v1/Email/", {"Messages": messages}, format="json")
    results = response.json()["Results"]
    assert len(results) == 1000 and results[10]["Status"] == 400
    assert sum(r["Status"] == 200 for r in results) == 999


def test_one_send_task_per_dispatcher_batch_picks_up_every_row(api, settings):
    """One task on commit; each full claim kicks the next, the kick after the last finds none."""
    settings.HERALD_DISPATCH_BATCH_SIZE = 50
    brand = brand_id(api)
    tasks: list[str] = []

    def count(sender=None, **kwargs) -> None:
        if sender is not None and sender.name == "comms.send_delivery":
            tasks.append(kwargs["args"][0])

    task_prerun.connect(count)
    try:
        response = api.post("/v1/Email/", {"Messages": [
            token_message(brand, to=f"guest{n}@example.com") for n in range(250)]})
    finally:
        task_prerun.disconnect(count)
    ids = [r["MessageId"] for r in response.json()["Results"]]
    assert len(tasks) == 250 // 50 + 1
    statuses = set(Delivery.objects.filter(id__in=ids).values_list("status", flat=True))
    assert statuses == {Status.SENT}
