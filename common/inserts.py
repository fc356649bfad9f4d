"""Bulk INSERTs without the ORM's per-row cost (the engine's batches of messages, the guest
import, the atomic check-in path).

``QuerySet.bulk_create`` prepares every value of every row through its field (for a
Delivery, ~30 fields), which made inserting 100,000 rows take tens of seconds of Python while
the database itself needed about one. ``rows_insert`` prepares each column's value once when
it is the same for every row (defaults, auto_now timestamps, the account) and only the given
columns per row, then sends one statement. Columns come from the model, so a field added
later is filled with its default as ``bulk_create`` would.
"""

import json
import uuid
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import Any

from django.db import connection, models, transaction
from django.db.models.fields import NOT_PROVIDED, AutoFieldMixin
from django.utils import timezone


def rows_insert(model: type[models.Model], columns: Sequence[str], rows: Sequence[Sequence[Any]],
                *, constants: dict[str, Any] | None = None,
                ignore_conflicts: bool = False) -> None:
    """Insert ``rows`` (values in the order of ``columns``, by attname) into ``model``'s table;
    ``constants`` (attname → value) are the same for every row; other fields take their
    default (a callable default is called per row, and bound once when it gave every row the
    same value); auto_now(_add) fields get one timestamp. ``ignore_conflicts``: a row
    violating a unique constraint is skipped (``ON CONFLICT DO NOTHING``).

    One statement either way: column arrays (``unnest``) for plain columns, one JSON
    parameter (``json_to_recordset``) when a varying column is JSON — psycopg quotes every
    JSON value of an array column, which tripled the bulk send's queueing."""
    if not rows:
        return
    constants = dict(constants or {})
    now = timezone.now()
    given = {name: index for index, name in enumerate(columns)}
    defaults: dict[str, list[Any]] = {}
    fixed, per_row = [], []  # per_row: (field, index in row or None for a default)
    for field in model._meta.concrete_fields:
        if field.attname in given:
            per_row.append((field, given[field.attname]))
        elif field.attname in constants:
            fixed.append((field, field.get_db_prep_save(constants[field.attname], connection)))
        elif getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            fixed.append((field, field.get_db_prep_save(now, connection)))
        elif field.db_default is not NOT_PROVIDED or (
                field.primary_key and isinstance(field, AutoFieldMixin)):
            continue  # the database fills it
        elif field.has_default() and callable(field.default):
            values = defaults[field.attname] = [field.get_default() for _ in rows]
            if values.count(values[0]) == len(values):
                fixed.append((field, field.get_db_prep_save(values[0], connection)))
            else:
                per_row.append((field, None))
        else:
            fixed.append((field, field.get_db_prep_save(field.get_default(), connection)))
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    used = [field for field, _ in per_row] + [field for field, _ in fixed]
    names = ", ".join(quote(field.column) for field in used)
    end = " ON CONFLICT DO NOTHING" if ignore_conflicts else ""
    tail = [value for _, value in fixed]

    def value(field: models.Field, index: int | None, number: int, row: Sequence[Any]) -> Any:
        return row[index] if index is not None else defaults[field.attname][number]

    if any(isinstance(field, models.JSONField) for field, _ in per_row):
        records = [{field.attname: value(field, index, number, row) for field, index in per_row}
                   for number, row in enumerate(rows)]
        _json_insert(table, names, used, len(per_row), records, tail, end)
        return
    prepare = [(_preparer(field), index, field) for field, index in per_row]
    params = [[prep(value(field, index, number, row)) for prep, index, field in prepare] + tail
              for number, row in enumerate(rows)]
    _unnest_insert(table, names, used, len(per_row), params, end)


def _json_insert(table: str, names: str, used: list[models.Field], varying: int,
                 records: list[dict[str, Any]], tail: list[Any], end: str) -> None:
    """One ``INSERT … SELECT … FROM json_to_recordset(%s)``: the varying columns as one JSON
    parameter (UUIDs and timestamps as text), the constant ones bound once each."""
    quote = connection.ops.quote_name
    per_row, fixed = used[:varying], used[varying:]
    selected = ", ".join([*(f"v.{quote(f.attname)}" for f in per_row),
                          *(f"%s::{f.db_type(connection)}" for f in fixed)])
    record = ", ".join(f"{quote(f.attname)} {f.db_type(connection)}" for f in per_row)
    data = json.dumps(records, ensure_ascii=False, default=str)
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {table} ({names}) SELECT {selected}"
                       f" FROM json_to_recordset(%s::json) AS v({record}){end}", [*tail, data])


def _unnest_insert(table: str, names: str, used: list[models.Field], varying: int,
                     params: list[list[Any]], end: str) -> None:
    """One ``INSERT … SELECT … FROM unnest(column arrays)``: a handful of parameters whatever
    the number of rows, bound server-side (Django's client-side binding spent seconds parsing
    and quoting a 100,000-placeholder statement)."""
    import psycopg

    types = [field.db_type(connection) for field in used]
    arrays = ", ".join(f"%s::{kind}[]" for kind in types[:varying])
    constants = "".join(f", %s::{kind}" for kind in types[varying:])
    sql = (f"INSERT INTO {table} ({names}) SELECT u.*{constants} FROM unnest({arrays}) AS u"
           f"{end}")
    columns = [list(column) for column in zip(*(row[:varying] for row in params), strict=True)]
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, [*params[0][varying:], *columns])  # in the order of the SQL


def _preparer(field: models.Field) -> Callable[[Any], Any]:
    """The database value of a per-row column: text and UUIDs (the columns the import and the
    bulk send vary) without the field's generic path, anything else through it."""
    def generic(value: Any) -> Any:
        return field.get_db_prep_save(value, connection)

    if isinstance(field, models.UUIDField) or (
            field.is_relation and isinstance(field.target_field, models.UUIDField)):
        def uuid_value(value: Any) -> Any:
            return value if isinstance(value, uuid.UUID) else generic(value)

        return uuid_value
    if isinstance(field, models.CharField | models.TextField) and not field.is_relation:
        def text(value: Any) -> Any:
            return value if value is None or type(value) is str else generic(value)

        return text
    return generic


def insert_together(*objects: models.Model) -> None:
    """Save new model instances with one statement (``WITH i0 AS (INSERT …) INSERT …``): all
    or none, in one round trip and outside any transaction block, where the ORM needs BEGIN,
    an INSERT each and COMMIT. The SQL of each INSERT is the ORM's own (defaults,
    ``auto_now`` values, the field's preparation); no model signals are sent."""
    statements, params = [], []
    for obj in objects:
        sql, values = _insert_sql(obj)
        statements.append(sql)
        params += values
    *first, last = statements
    sql = (f"WITH {', '.join(f'i{n} AS ({s})' for n, s in enumerate(first))} {last}"
           if first else last)
    # Inside a caller's transaction a failed statement would abort it: a savepoint, as the
    # ORM's atomic() gives (the API's atomic path runs in autocommit and needs none).
    with transaction.atomic() if connection.in_atomic_block else nullcontext():
        with preparing_cursor() as cursor:
            cursor.execute(sql, params)
    for obj in objects:
        obj._state.adding, obj._state.db = False, connection.alias


def preparing_cursor():
    """Django's cursor (its execute wrappers, its SQL log at DEBUG) over a psycopg cursor that
    binds server-side and prepares: the parameters travel apart from the statement instead of
    being quoted into it in Python (~45 for a guest with its delivery), and PostgreSQL parses
    and plans a statement once per connection (the pool keeps connections) instead of on
    every request. For the hot statements whose text never changes (``insert_together``'s,
    the API's checks); ``%s`` placeholders as with Django's cursor."""
    connection.ensure_connection()
    raw = connection.connection
    if raw.prepare_threshold is None:  # Django's default: psycopg then prepares nothing
        raw.prepare_threshold = _ONLY_WHEN_ASKED
    cursor = _PreparingCursor(raw)
    cursor.shows_sql = connection.queries_logged  # DEBUG, tests: Django logs the statement
    return connection._prepare_cursor(cursor)


# A threshold no statement reaches: psycopg prepares only what a cursor asks it to.
_ONLY_WHEN_ASKED = 2**62


def _preparing_cursor_class() -> type:
    import psycopg

    class PreparingCursor(psycopg.Cursor):
        """Prepares what it executes (psycopg keeps a connection's last 100; Django turns
        psycopg's automatic preparing off)."""

        shows_sql = False

        def execute(self, query, params=None, *, prepare=None, binary=None):
            super().execute(query, params, prepare=prepare is not False, binary=binary)
            if self.shows_sql and self._query is None:
                # What Django's SQL log reads (a prepared run leaves it unset).
                self._query = self._convert_query(query, params)
            return self

    return PreparingCursor


_PreparingCursor = _preparing_cursor_class()


# A model's one-row INSERT as the ORM compiles it, by (model, database alias). Compiling it
# (~45 fields' placeholders, quoting, the backend's lookups) was a fifth of the API's atomic
# create + send's CPU; for plain values its text never changes, only the parameters do.
_compiled: dict[tuple[type[models.Model], str],
                tuple[str, list[models.Field], list[Callable[[Any], Any]]]] = {}


def _insert_sql(obj: models.Model) -> tuple[str, list[Any]]:
    """``obj``'s INSERT and its parameters: the ORM's statement, compiled once per model, and
    the values the ORM would bind (``pre_save`` then ``get_db_prep_save``, field by field).
    A value that is an expression (``DatabaseDefault``, ``Now()``…) or a field with its own
    placeholder changes the SQL: such a row is compiled by the ORM every time."""
    from django.db.models.sql import InsertQuery

    model = type(obj)
    cached = _compiled.get((model, connection.alias))
    if cached is not None:
        sql, fields, preparers = cached
        values = [field.pre_save(obj, add=True) for field in fields]
        if not any(hasattr(value, "resolve_expression") for value in values):
            # Text and UUIDs as they are, the rest through the field (``_preparer``).
            return sql, [prepare(value) for prepare, value in zip(preparers, values, strict=True)]
    fields = [f for f in model._meta.local_concrete_fields if not f.generated]
    query = InsertQuery(model)
    query.insert_values(fields, [obj])
    [(sql, values)] = query.get_compiler(connection=connection).as_sql()
    plain = not any(hasattr(field, "get_placeholder") for field in fields) and not any(
        hasattr(getattr(obj, field.attname), "resolve_expression") for field in fields)
    if plain and cached is None:
        _compiled[(model, connection.alias)] = (sql, fields, [_preparer(f) for f in fields])
    return sql, list(values)
