"""Contacts under concurrency on the real database: identifiers stay unique per account."""


import pytest

from contacts.models import Contact
from tests.conftest import concurrently, make_client

pytestmark = pytest.mark.django_db(transaction=True)
THREADS = 12



def test_concurrent_upserts_of_one_email_make_one_contact(keys):
    responses = concurrently(THREADS, lambda i: make_client(keys).post(
        "/v1/contacts", {"email": "Race@Example.com", f"field_{i}": i}, format="json"))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * (THREADS - 1) + [201], [r.content for r in responses]
    assert len({r.json()["contact"]["uuid"] for r in responses}) == 1
    contact = Contact.objects.get(account=keys.account)
    assert contact.email == "race@example.com"
    assert contact.meta == {f"field{i}": i for i in range(THREADS)}  # no update was lost


def test_concurrent_creates_never_overshoot_the_quota(keys):
    keys.account.contact_quota = 3
    keys.account.save()
    responses = concurrently(THREADS, lambda i: make_client(keys).post(
        "/v1/contacts", {"email": f"c{i}@example.com"}, format="json"))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * 3 + [402] * (THREADS - 3)
    assert Contact.objects.filter(account=keys.account).count() == 3
