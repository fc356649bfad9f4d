"""``common.postgresql``: Django's backend reading timestamps with psycopg's C loader, giving
exactly what Django's own loader gives (aware, ``datetime.timezone.utc``, microseconds)."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.db import connection
from psycopg.pq import Format

from common.postgresql.base import _DJANGO, _FAST, _OID, UtcTimestamptzLoader

pytestmark = pytest.mark.django_db

VALUES = ["2026-11-28 23:59:59.999999+00", "1999-12-31 23:00:00+01", "0001-01-01 00:00:00+00",
          "9999-12-31 23:59:59.5+00", "2026-03-29 01:30:00-09:30"]


def _read(sql: str) -> list:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return [row[0] for row in cursor.fetchall()]


def test_timestamps_are_read_by_the_c_loader_as_django_would():
    connection.ensure_connection()
    assert connection.connection.adapters.get_loader(_OID, Format.TEXT) is UtcTimestamptzLoader
    assert _FAST.__module__.startswith("psycopg_binary")  # the C one, not the Python one
    sql = " UNION ALL ".join(f"SELECT '{v}'::timestamptz" for v in VALUES)
    read = _read(sql)
    django = [_DJANGO(_OID, connection.connection).load(v.encode()) for v in
              _read(sql.replace("::timestamptz", "::timestamptz::text"))]
    assert read == django
    assert all(value.tzinfo is UTC for value in read)
    assert read[0] == datetime(2026, 11, 28, 23, 59, 59, 999999, tzinfo=UTC)
    assert read[4] == datetime(2026, 3, 29, 1, 30, tzinfo=timezone(-timedelta(hours=9.5)))


def test_a_session_in_another_time_zone_falls_back_to_djangos_loader():
    with connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'Europe/Paris'")
        try:
            loader = UtcTimestamptzLoader(_OID, connection.connection)
            assert loader.load(b"2026-01-01 11:00:00+01") == (
                _DJANGO(_OID, connection.connection).load(b"2026-01-01 11:00:00+01"))
            assert loader.load.__self__.__class__ is not _FAST
        finally:
            cursor.execute("SET TIME ZONE 'UTC'")
