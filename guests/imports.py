"""CSV import of guests into an event: upload, validate (a preview; nothing written to
Attendee), confirm, import in batches.

The file is parsed twice, by the same function: once to validate (counts, the first row
errors, a preview) and once to import. Parsing is pure and deterministic, so what was
previewed is what is imported; the existence of each id is checked again at import time.

Ids: staff never type GUIDs. A GUID in the id column is the guest's id, as the API's is. Any
other id (``1000``) is an external id: the guest's id is derived from it (uuid5 of the
account and the value), so importing the same file again adds no one, and the value is kept
as the guest's correlation id when the row gives none. A row without an id (no id column, or
an empty cell) gets one derived from the file's content and its line: both parses of the file
agree, and uploading the very same file again adds no one either.

Speed: one ``SELECT id, account_id … WHERE id IN (…)`` and one ``executemany`` INSERT (``ON
CONFLICT DO NOTHING``, ``common.inserts``) per batch of HERALD_IMPORT_BATCH_SIZE rows, each
batch committed with the import's progress, so a re-run task resumes after the last
committed batch.
"""

import codecs
import csv
import hashlib
import io
import logging
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from common import jobs
from common.inserts import rows_insert
from guests.models import Attendee, Event, GuestImport, GuestImportFile

log = logging.getLogger(__name__)

# Header names, compared case-insensitively without spaces, "_" and "-".
COLUMNS = {
    "id": "id", "guestid": "id", "attendeeid": "id",
    "firstname": "first_name", "lastname": "last_name",
    "email": "email", "emailaddress": "email",
    "correlationid": "correlation_id",
}
REQUIRED = ("email",)
FIELDS = ("id", "first_name", "last_name", "email", "correlation_id")
MAX_LENGTHS = {"id": 128, "firstName": 100, "lastName": 100, "email": 254, "correlationId": 128}
PREVIEW_ROWS = 20
# The namespace of ids Herald derives for an import's rows (external ids, rows without one).
IMPORT_NAMESPACE = uuid.UUID("6f1d7c3e-2b8a-5c4e-9a70-3d1f8e2b6a14")
# Bytes that could not be decoded as UTF-8 come through as lone surrogates.
_NOT_UTF8 = re.compile("[\udc80-\udcff]")
_HEADER_JUNK = re.compile(r"[\s_\-]+")
# Addresses Django's validate_email certainly accepts (anything else goes through it).
_PLAIN_EMAIL = re.compile(
    r"[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}\Z")


class ImportFileError(Exception):
    """The whole file is unusable (encoding, header, CSV syntax): nothing can be imported."""


@dataclass(frozen=True, slots=True)
class GuestRow:
    line: int
    id: uuid.UUID
    first_name: str
    last_name: str
    email: str
    correlation_id: str | None
    external_id: str | None = None  # the id column's value when it is not a GUID
    generated: bool = False  # the row had no id: Herald derived one


@dataclass
class ParsedFile:
    rows: list[GuestRow] = field(default_factory=list)  # rows without errors, in file order
    errors: list[dict[str, Any]] = field(default_factory=list)  # the first ``max_errors``
    invalid: int = 0
    total: int = 0


# --- parsing (pure) -------------------------------------------------------------------------

def guests_csv_parse(*, data: bytes, account_id: uuid.UUID | str,
                     max_errors: int = 1000) -> ParsedFile:
    """Every data row checked on its own: an id (a GUID, else an external id or none, mapped
    to a derived GUID in ``account_id``'s namespace; unique in the file: a later duplicate is
    an error), a valid email, lengths, UTF-8 text. Raises ``ImportFileError`` for problems of
    the whole file."""
    text = _text(data)
    namespace = uuid.uuid5(IMPORT_NAMESPACE, str(account_id))
    file_ns = uuid.uuid5(namespace, "file:" + hashlib.sha256(data).hexdigest())
    # Per-row text checks only when the file needs them (the common file is clean UTF-8).
    check_text = _NOT_UTF8.search(text) is not None or "\x00" in text
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(data))
    parsed = ParsedFile()
    seen: dict[uuid.UUID, int] = {}
    try:
        columns, width = _columns(next(reader, None))
        indexes = [columns.get(name) for name in FIELDS]
        for record in reader:
            if len(record) <= 1 and not "".join(record).strip():
                continue  # blank line
            parsed.total += 1
            row, problems = _row(record, indexes, width, reader.line_num, seen, check_text,
                                 (namespace, file_ns))
            if row is not None:
                parsed.rows.append(row)
                seen[row.id] = row.line
            else:
                _add_error(parsed, max_errors, reader.line_num, _raw(record, indexes[0]),
                           problems)
    except csv.Error as exc:
        raise ImportFileError(f"Line {reader.line_num}: not valid CSV ({exc}).") from None
    return parsed


def _text(data: bytes) -> str:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or b"\x00" in data[:4096]:
        raise ImportFileError("The file is UTF-16 or binary, not UTF-8 text: save it as "
                              "“CSV UTF-8” and upload it again.")
    # Undecodable bytes become lone surrogates: the rows holding them get a row error.
    return data.decode("utf-8-sig", errors="surrogateescape")


def _delimiter(data: bytes) -> str:
    """Comma, or the semicolon / tab a spreadsheet in some locales writes instead."""
    first = data[:4096].split(b"\n", 1)[0]
    return max((",", ";", "\t"), key=lambda d: first.count(d.encode()))


def _columns(header: list[str] | None) -> tuple[dict[str, int], int]:
    if header is None:
        raise ImportFileError("The file is empty: the first line must name the columns.")
    if any(_NOT_UTF8.search(name) for name in header):
        raise ImportFileError("Line 1: the header is not UTF-8 text; save the file as "
                              "“CSV UTF-8” and upload it again.")
    columns: dict[str, int] = {}
    for index, name in enumerate(header):
        key = COLUMNS.get(_HEADER_JUNK.sub("", name.lstrip("\ufeff")).lower())
        if key and key not in columns:
            columns[key] = index
    missing = [name for name in REQUIRED if name not in columns]
    if missing:
        raise ImportFileError(
            f"Line 1: missing column(s) {', '.join(missing)}. Expected a header with email, "
            f"firstName, lastName and optionally id and correlationId; found "
            f"{', '.join(repr(h) for h in header[:10]) or 'nothing'}.")
    return columns, len(header)


def _row(record: list[str], indexes: list[int | None], width: int, line: int,
         seen: dict[uuid.UUID, int], check_text: bool,
         namespaces: tuple[uuid.UUID, uuid.UUID]) -> tuple[GuestRow | None, list[str]]:
    raw_id, first_name, last_name, email, correlation_id = (
        _raw(record, index).strip() for index in indexes)
    problems = []
    if len(record) != width:
        problems.append(f"expected {width} fields, found {len(record)}")
    if check_text:
        if any(_NOT_UTF8.search(value) for value in record):
            problems.append("not UTF-8 text: save the file as “CSV UTF-8”")
        elif any("\x00" in value for value in record):
            problems.append("contains a NUL character")
    guest_id, external_id = _guest_id(raw_id, line, namespaces)
    if guest_id in seen:
        problems.append(f"id: duplicate of line {seen[guest_id]}")
    _check_email(email, problems)
    for name, value in (("id", external_id or ""), ("firstName", first_name),
                        ("lastName", last_name), ("email", email),
                        ("correlationId", correlation_id)):
        if len(value) > MAX_LENGTHS[name]:
            problems.append(f"{name}: longer than {MAX_LENGTHS[name]} characters")
    if problems:
        return None, problems
    return GuestRow(line, guest_id, first_name, last_name, email,
                    correlation_id or external_id or None, external_id, not raw_id), []


def _raw(record: list[str], index: int | None) -> str:
    return record[index] if index is not None and index < len(record) else ""


def _guest_id(value: str, line: int,
              namespaces: tuple[uuid.UUID, uuid.UUID]) -> tuple[uuid.UUID, str | None]:
    """The guest's id and the external id it came from (None for a GUID or no id)."""
    namespace, file_ns = namespaces
    if not value:
        return uuid.uuid5(file_ns, f"line:{line}"), None
    try:
        return uuid.UUID(value), None
    except ValueError:
        return uuid.uuid5(namespace, "external:" + value), value


def _check_email(value: str, problems: list[str]) -> None:
    if not value:
        problems.append("email: missing")
        return
    if _PLAIN_EMAIL.match(value) and len(value) <= 254:
        return  # the common address, without the full validator's cost
    try:
        validate_email(value)
    except ValidationError:
        problems.append(f"email: {_shown(value)} is not a valid email address")


def _shown(value: str) -> str:
    """A value quoted in an error: short, and storable (no NUL or lone surrogate)."""
    clean = _NOT_UTF8.sub("\ufffd", value.replace("\x00", ""))
    return repr(clean[:60] + ("…" if len(clean) > 60 else ""))


def _add_error(parsed: ParsedFile, limit: int, line: int, raw_id: str,
               problems: list[str]) -> None:
    parsed.invalid += 1
    if len(parsed.errors) < limit:
        parsed.errors.append({"line": line, "id": _shown(raw_id)[1:-1], "errors": problems})


def _batches(rows: list[GuestRow], size: int) -> Iterator[list[GuestRow]]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


def _owners(ids: list[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
    """The account of each id that already exists (one query)."""
    return dict(Attendee.objects.filter(id__in=ids).values_list("id", "account_id"))


# --- services -------------------------------------------------------------------------------

def guest_import_create(*, event: Event, user: Any, filename: str, data: bytes) -> GuestImport:
    """Store an uploaded file (the caller has checked its size) and queue its validation."""
    with transaction.atomic():
        guest_import = GuestImport.objects.create(
            account_id=event.account_id, event=event, uploaded_by=user,
            filename=filename[:255], size=len(data))
        GuestImportFile.objects.create(guest_import=guest_import, data=data)
        transaction.on_commit(
            lambda: jobs.publish("guests.validate_import", str(guest_import.id)), robust=True)
    return guest_import


def guest_import_validate(*, import_id: Any) -> None:
    """Counts, the first row errors and a preview; nothing is written to Attendee. An id that
    another account's guest holds is a row error; one this account has is skipped later."""
    guest_import = GuestImport.objects.filter(
        id=import_id, status=GuestImport.Status.UPLOADED).first()
    if guest_import is None:
        return
    limit = settings.HERALD_IMPORT_MAX_ERRORS
    try:
        parsed = guests_csv_parse(data=_data(guest_import), max_errors=limit,
                                  account_id=guest_import.account_id)
    except ImportFileError as exc:
        _finish(guest_import.id, GuestImport.Status.UPLOADED, status=GuestImport.Status.FAILED,
                file_error=str(exc))
        return
    existing = foreign = 0
    for batch in _batches(parsed.rows, settings.HERALD_IMPORT_BATCH_SIZE):
        owners = _owners([row.id for row in batch])
        for row in batch:
            owner = owners.get(row.id)
            if owner == guest_import.account_id:
                existing += 1
            elif owner is not None:
                foreign += 1
                parsed.errors.append({"line": row.line, "id": str(row.id), "errors": [
                    "id: already used by a guest of another account"]})
    parsed.errors.sort(key=lambda error: error["line"])
    GuestImport.objects.filter(id=guest_import.id, status=GuestImport.Status.UPLOADED).update(
        status=GuestImport.Status.VALIDATED, total=parsed.total,
        valid=len(parsed.rows) - foreign, invalid=parsed.invalid + foreign, existing=existing,
        errors=parsed.errors[:limit], preview=[_preview(row) for row in parsed.rows[:PREVIEW_ROWS]],
        updated_at=timezone.now())


def _preview(row: GuestRow) -> dict[str, Any]:
    return {"line": row.line, "id": str(row.id), "firstName": row.first_name,
            "lastName": row.last_name, "email": row.email, "correlationId": row.correlation_id,
            "externalId": row.external_id, "generated": row.generated}


def guest_import_confirm(*, guest_import: GuestImport) -> bool:
    """Start the import (validated, or failed part-way: it resumes). False if it is already
    running or done — a second click starts nothing."""
    with transaction.atomic():
        claimed = GuestImport.objects.filter(id=guest_import.id).filter(
            status=GuestImport.Status.VALIDATED
        ).update(status=GuestImport.Status.IMPORTING, started_at=timezone.now(),
                 updated_at=timezone.now()) or GuestImport.objects.filter(
            id=guest_import.id, status=GuestImport.Status.FAILED, started_at__isnull=False,
        ).update(status=GuestImport.Status.IMPORTING, file_error="", updated_at=timezone.now())
        if claimed:
            transaction.on_commit(
                lambda: jobs.publish("guests.import_guests", str(guest_import.id)), robust=True)
    return bool(claimed)


def guest_import_run(*, import_id: Any) -> None:
    """Insert the valid rows batch by batch. Ids this account already has are skipped (left
    as they are) and counted; ids of another account are never touched. Each batch commits
    with the progress counters, so a re-run resumes after the last committed batch."""
    guest_import = GuestImport.objects.filter(
        id=import_id, status=GuestImport.Status.IMPORTING).first()
    if guest_import is None:
        return
    try:
        rows = guests_csv_parse(data=_data(guest_import), max_errors=0,
                                account_id=guest_import.account_id).rows
        GuestImport.objects.filter(id=guest_import.id).update(to_process=len(rows))
        for batch in _batches(rows[guest_import.processed:], settings.HERALD_IMPORT_BATCH_SIZE):
            _import_batch(guest_import, batch)
    except Exception as exc:
        log.exception("Guest import %s failed", guest_import.id)
        _finish(guest_import.id, GuestImport.Status.IMPORTING, status=GuestImport.Status.FAILED,
                file_error=f"The import stopped: {exc}. Confirm again to resume it.")
        return
    with transaction.atomic():
        _finish(guest_import.id, GuestImport.Status.IMPORTING, status=GuestImport.Status.DONE)
        GuestImportFile.objects.filter(guest_import_id=guest_import.id).delete()


def _data(guest_import: GuestImport) -> bytes:
    stored = GuestImportFile.objects.filter(guest_import_id=guest_import.id).first()
    if stored is None:
        raise ImportFileError("The uploaded file is gone: upload it again.")
    return bytes(stored.data)


def _import_batch(guest_import: GuestImport, batch: list[GuestRow]) -> None:
    with transaction.atomic():
        owners = _owners([row.id for row in batch])
        new = [(row.id, row.first_name, row.last_name, row.email, row.correlation_id)
               for row in batch if row.id not in owners]
        rows_insert(Attendee, ("id", "first_name", "last_name", "email", "correlation_id"),
                    new, constants={"account_id": guest_import.account_id,
                                    "event_id": guest_import.event_id},
                    ignore_conflicts=True)
        mine = sum(1 for row in batch if owners.get(row.id) == guest_import.account_id)
        GuestImport.objects.filter(id=guest_import.id).update(
            processed=F("processed") + len(batch), imported=F("imported") + len(new),
            skipped=F("skipped") + mine, updated_at=timezone.now())


def _finish(import_id: Any, current: str, **changes: Any) -> None:
    GuestImport.objects.filter(id=import_id, status=current).update(
        finished_at=timezone.now(), updated_at=timezone.now(), **changes)


def guest_import_progress(*, guest_import: GuestImport) -> dict[str, Any]:
    """What the progress bar polls."""
    Status = GuestImport.Status
    running = guest_import.status == Status.IMPORTING
    done, total = (guest_import.processed, guest_import.to_process) if running else (0, 0)
    texts = {
        Status.UPLOADED: "Checking the file…",
        Status.VALIDATED: "Checked: waiting for confirmation.",
        Status.IMPORTING: f"Imported {guest_import.processed:,} of "
                          f"{guest_import.to_process or guest_import.valid:,} rows…",
        Status.DONE: f"Done: {guest_import.imported:,} guests imported, "
                     f"{guest_import.skipped:,} existing ids skipped.",
        Status.FAILED: guest_import.file_error,
    }
    return {"status": guest_import.status, "finished": guest_import.status in (
        Status.VALIDATED, Status.DONE, Status.FAILED), "bars": {"rows": [done, total]},
        "text": texts[guest_import.status]}
