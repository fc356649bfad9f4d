"""Index changes that do not lock a busy table, for hand-written migrations.

Django's ``AlterField(db_index=False)`` on a foreign key drops and re-adds the constraint
(validating every row) and ``AddIndex`` builds inside the migration's transaction, both
holding ACCESS EXCLUSIVE on the table meanwhile. These run CONCURRENTLY (the migration must
say ``atomic = False``) and are safe to re-run (IF [NOT] EXISTS).
"""

from typing import Any


def indexes_replace(schema_editor: Any, table: str, *, drop: list[list[str]],
                    create: dict[str, list[str]] | None = None) -> None:
    """Create the ``create`` indexes (name → columns) first, then drop every plain index whose
    columns are one of ``drop`` (found by introspection: Django names them by hash)."""
    connection = schema_editor.connection
    quote = schema_editor.quote_name
    create = create or {}
    with connection.cursor() as cursor:
        for name, columns in create.items():
            cursor.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {quote(name)} ON"
                           f" {quote(table)} ({', '.join(map(quote, columns))})")
        for name, info in connection.introspection.get_constraints(cursor, table).items():
            if (info["index"] and not info["unique"] and not info["primary_key"]
                    and info["columns"] in drop and name not in create):
                cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {quote(name)}")
