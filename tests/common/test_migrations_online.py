"""The hottest tables carry no index that a composite index already covers (each one more
write per status change); migrated without locking (common/migrations_online.py)."""

import pytest
from django.db import connection


def _indexed_columns(table: str) -> list[list[str]]:
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, table)
    return sorted(info["columns"] for info in found.values()
                  if info["index"] and not info["unique"] and not info["primary_key"])


@pytest.mark.django_db
def test_deliveries_and_webhook_messages_have_no_redundant_single_column_index():
    deliveries = _indexed_columns("comms_delivery")
    assert ["account_id"] not in deliveries and ["attendee_id"] not in deliveries
    assert deliveries.count(["provider_message_id"]) == 1  # equality only: no _like copy
    messages = _indexed_columns("webhooks_message")
    assert ["endpoint_id"] not in messages and ["delivery_event_id"] not in messages
