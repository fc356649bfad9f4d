"""``common.inserts.insert_together``: the ORM's INSERT compiled once per model, the same rows."""

import uuid

import pytest
from django.db.models import Value
from django.db.models.functions import Upper

from common import inserts
from common.inserts import insert_together
from guests.models import Attendee, Event

pytestmark = pytest.mark.django_db


@pytest.fixture
def event(keys) -> Event:
    return Event.objects.create(account=keys.account, name="Gala")


def _guest(event: Event, **fields) -> Attendee:
    return Attendee(id=uuid.uuid4(), account_id=event.account_id, event=event,
                    email="jane@example.com", **fields)


def test_the_compiled_statement_inserts_what_the_orm_would(event) -> None:
    """The second row takes the statement compiled for the first; each row holds what its
    instance held (defaults, the ``auto_now`` stamps given at insert, its own values)."""
    inserts._compiled.clear()
    first, second = _guest(event, first_name="Jane"), _guest(event, first_name="John")
    insert_together(first)
    assert (Attendee, "default") in inserts._compiled
    insert_together(second)
    columns = [f.attname for f in Attendee._meta.concrete_fields]
    for guest in (first, second):
        row = Attendee.objects.values(*columns).get(id=guest.id)
        assert row == {name: getattr(guest, name) for name in columns}
        assert not guest._state.adding


def test_an_expression_value_is_compiled_by_the_orm(event) -> None:
    """A value that is an expression changes the statement: never the cached one's ``%s``."""
    insert_together(_guest(event, first_name="Jane"))  # compiled and cached
    shouting = _guest(event, first_name=Upper(Value("jane")))
    insert_together(shouting)
    assert Attendee.objects.get(id=shouting.id).first_name == "JANE"


def test_the_statement_is_bound_and_prepared_by_the_server(event) -> None:
    """Parameters travel apart from the SQL (psycopg's server-side binding), so PostgreSQL
    prepares the INSERT a connection keeps running instead of parsing and planning it each
    time; Django still sees the statement (execute wrappers, the DEBUG log)."""
    from django.db import connection

    seen = []

    def wrapper(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        for n in range(6):  # psycopg prepares a statement on its fifth run (prepare_threshold)
            insert_together(_guest(event, first_name=f"Guest {n}"))
    assert len([sql for sql in seen if sql.startswith("INSERT INTO")]) == 6
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements"
                       " WHERE statement LIKE %s", [f'INSERT INTO "{Attendee._meta.db_table}"%'])
        assert cursor.fetchone()[0] == 1
    assert Attendee.objects.filter(first_name__startswith="Guest ").count() == 6


def test_a_query_through_the_preparing_cursor_is_prepared_and_answers() -> None:
    """``preparing_cursor`` for other hot statements (a read with ``%s`` parameters)."""
    from django.db import connection

    from common.inserts import preparing_cursor

    with preparing_cursor() as cursor:
        cursor.execute("SELECT %s::int + 1, %s::text", [41, "herald-prepared-check"])
        assert cursor.fetchone() == (42, "herald-prepared-check")
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements"
                       " WHERE statement LIKE %s", ["SELECT $1::int + 1%"])
        assert cursor.fetchone()[0] == 1
