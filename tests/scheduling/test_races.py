"""Cancel against a worker on the real database (committed rows, threads on their own
connections): the conditional UPDATEs let exactly one of them win, and the provider hears of
a delivery only if the worker won."""

import threading
import time

import pytest
from django.db import connection

from comms.models import Delivery
from comms.scheduling import deliveries_release
from tests.conftest import TICKET, concurrently, guest, make_client
from tests.scheduling.helpers import ahead, later

pytestmark = pytest.mark.django_db(transaction=True)
SEND = "/comms/v1/api/comms/send"


def scheduled_ticket(keys) -> str:
    client = make_client(keys)
    event_id = client.post("/checkin/v1/api/event", {"name": "Race"}, format="json").json()["id"]
    template_id = client.post("/comms/v1/api/comms/template", TICKET,
                              format="json").json()["id"]
    created = client.post("/checkin/v1/api/guest", guest(event_id, template_id,
                                                         sendAt=ahead(minutes=10)),
                          format="json")
    assert created.status_code == 200, created.content
    return created.json()["attendeeInvitationId"]


def release_then_close() -> None:
    """The release tick on a worker's own connection (closed after, as a worker's would be)."""
    try:
        deliveries_release(now=later(minutes=11))
    finally:
        connection.close()


def test_a_cancel_while_the_worker_sends_it_is_409_and_it_is_sent_once(keys, sendgrid):
    invitation = scheduled_ticket(keys)
    sendgrid.set_delay(1.5)  # the provider call in flight while the DELETE arrives
    worker = threading.Thread(target=release_then_close)
    worker.start()
    deadline = time.monotonic() + 10
    while Delivery.objects.get(id=invitation).status != "sending":
        assert time.monotonic() < deadline, "the worker never claimed it"
        time.sleep(0.02)

    response = make_client(keys).delete(f"{SEND}/{invitation}")
    worker.join()

    assert response.status_code == 409
    assert "a worker is sending it now" in response.json()["message"]
    assert len(sendgrid.messages) == 1
    assert Delivery.objects.get(id=invitation).status == "sent"


def test_cancels_racing_the_release_tick_have_one_winner(keys, sendgrid):
    invitation = scheduled_ticket(keys)

    def act(i: int):
        if i == 0:
            return deliveries_release(now=later(minutes=11))
        return make_client(keys).delete(f"{SEND}/{invitation}").status_code

    results = concurrently(6, act)

    cancels = results[1:]
    assert not [r for r in results if isinstance(r, Exception)], results
    status = Delivery.objects.get(id=invitation).status
    if 200 in cancels:  # a cancel won: one 200, the others found it cancelled
        assert sorted(cancels) == [200] + [409] * 4
        assert (status, sendgrid.attempts) == ("cancelled", 0)
    else:  # the worker won before any cancel
        assert cancels == [409] * 5
        assert (status, len(sendgrid.messages)) == ("sent", 1)


def test_a_cancel_waits_for_a_row_another_transaction_holds_and_cancels_it(keys, sendgrid):
    """An event's save refreshing the stored context (or any short transaction) holds the
    row: the cancel waits for it instead of skipping it and answering "not cancellable"."""
    from django.db import transaction

    invitation = scheduled_ticket(keys)
    held = threading.Event()

    def hold_the_row() -> None:
        try:
            with transaction.atomic():
                Delivery.objects.select_for_update().get(id=invitation)
                held.set()
                time.sleep(0.7)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_row)
    holder.start()
    assert held.wait(5)
    response = make_client(keys).delete(f"{SEND}/{invitation}")
    holder.join()

    assert response.status_code == 200, response.content
    assert Delivery.objects.get(id=invitation).status == "cancelled"
    deliveries_release(now=later(minutes=11))
    assert sendgrid.attempts == 0
