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

Columns: Herald guesses each header's field (case, accents and separators ignored; English,
French, German and Spanish names: "Prénom;Nom;E-mail"). A file whose every header is one of
the documented names (email, firstName, lastName, id, correlationId), email among them, is
checked at once (its preview still warns of a missing name column); any other goes through a
mapping step first (status ``mapping``): staff confirm one field per column, and validation
and import use that mapping.

Formula-looking cells (OWASP "CSV Injection": a value starting with = + - @, tab or carriage
return, also once leading white space and invisible characters are skipped and the first
character is NFKC-normalised: " =1+1", "\u00a0=1+1", full-width "\uff1d1+1") are neutralised
as OWASP advises (``formula_like``): a single quote is put in front of a name, an order
reference or an external id, so that neither a spreadsheet nor a rendered subject ever shows
it as a formula; the preview counts them and names their lines. An email cannot be changed so:
a formula-looking address is a row error.

Encoding: UTF-8 (with or without BOM). A file with no UTF-8 text beyond ASCII but bytes that
are not UTF-8 is the "CSV" of a Windows spreadsheet: it is read as Windows-1252, with a
warning. In a file that is otherwise UTF-8 such bytes stay a row error.

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
import unicodedata
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
from guests.models import Attendee, Event, GuestImport, GuestImportFile, new_ticket_key
from guests.reminders import reminders_schedule

log = logging.getLogger(__name__)

# The documented header names (compared without case, accents and separators): a file whose
# every header is one of them needs no mapping step.
COLUMNS = {
    "id": "id", "guestid": "id", "attendeeid": "id",
    "firstname": "first_name", "lastname": "last_name",
    "email": "email", "emailaddress": "email",
    "correlationid": "correlation_id",
}
# Other names a spreadsheet may use (English, French, German, Spanish): guessed, then shown.
SYNONYMS = {
    "email": ("mail", "courriel", "adressemail", "adresseemail", "adressecourriel",
              "mailadresse", "emailadresse", "correo", "correoelectronico", "epost"),
    "first_name": ("first", "givenname", "forename", "prenom", "vorname", "nombre"),
    "last_name": ("last", "surname", "familyname", "nom", "nomdefamille", "nachname",
                  "familienname", "apellido", "apellidos"),
    "id": ("externalid", "ticketid", "ticket", "ticketnumber", "ticketno", "billet",
           "numerodebillet", "nbillet", "ticketnummer"),
    "correlation_id": ("order", "orderid", "ordernumber", "orderno", "orderref",
                       "orderreference", "reference", "ref", "commande", "numerodecommande",
                       "ndecommande", "bestellung", "bestellnummer", "pedido",
                       "numerodepedido", "referencia"),
}
GUESSES = {**{name: key for key, names in SYNONYMS.items() for name in names}, **COLUMNS}
# What a column can fill, in the order the mapping step offers it ("" ignores the column).
FIELD_LABELS = {
    "email": "Email", "first_name": "First name", "last_name": "Last name",
    "correlation_id": "Order reference", "id": "Guest id or ticket number",
}
IGNORE = ""
# OWASP's CSV injection list: a cell starting with one of these is read as a formula.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_FIRST = frozenset(FORMULA_START)
MAX_COLUMNS = 100  # a guest list has a handful; the mapping step shows a select per column
SAMPLES = 3  # values shown per column in the mapping step
MAX_CELLS, MAX_CELL = 100, 1000  # a rejected row's cells kept for the rejected-rows CSV
WARNING_LINES = 20  # lines named per warning
REQUIRED = ("email",)
FIELDS = ("id", "first_name", "last_name", "email", "correlation_id")
MAX_LENGTHS = {"id": 128, "firstName": 100, "lastName": 100, "email": 254, "correlationId": 128}
PREVIEW_ROWS = 20
# The namespace of ids Herald derives for an import's rows (external ids, rows without one).
IMPORT_NAMESPACE = uuid.UUID("6f1d7c3e-2b8a-5c4e-9a70-3d1f8e2b6a14")
# Bytes that could not be decoded as UTF-8 come through as lone surrogates.
_NOT_UTF8 = re.compile("[\udc80-\udcff]")
_HEADER_JUNK = re.compile(r"[^0-9a-z]+")
# A character that only valid UTF-8 beyond ASCII decodes to (not a lone surrogate).
_UTF8_TEXT = re.compile("[^\x00-\x7f\udc80-\udcff]")
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


@dataclass(frozen=True, slots=True)
class CsvHeader:
    """The first line of a file and what Herald makes of it, before any row is checked."""

    names: list[str]
    samples: list[list[str]]  # per column, its first few non-blank values
    delimiter: str
    encoding: str  # "utf-8" or "cp1252"
    guess: list[str]  # per column, the field it fills (IGNORE: none)
    certain: bool  # only documented names, one of them email: no mapping step

    def as_mapping(self) -> dict[str, Any]:
        """What a GuestImport keeps (``mapping``): the columns, the guess, the chosen fields."""
        return {"headers": self.names, "samples": self.samples, "delimiter": self.delimiter,
                "encoding": self.encoding, "guess": self.guess, "fields": self.guess}


@dataclass
class ParsedFile:
    rows: list[GuestRow] = field(default_factory=list)  # rows without errors, in file order
    errors: list[dict[str, Any]] = field(default_factory=list)  # the first ``max_errors``
    invalid: int = 0
    total: int = 0
    formulas: list[int] = field(default_factory=list)  # lines of valid rows neutralised
    nameless: list[int] = field(default_factory=list)  # lines of valid rows without a name
    encoding: str = "utf-8"


# --- parsing (pure) -------------------------------------------------------------------------

def guests_csv_header(*, data: bytes) -> CsvHeader:
    """Read the header line and guess each column's field (header names first, then an
    unnamed column of addresses for the email). Raises ``ImportFileError`` for an empty or
    binary file, a blank first line or a first line of guest data instead of names."""
    text, encoding = _text(data)
    delimiter = _delimiter(data)
    reader = csv.reader(io.StringIO(text[:1024 * 1024], newline=""), delimiter=delimiter)
    try:
        names = _header_names(next(reader, None))
        samples: list[list[str]] = [[] for _ in names]
        for record, _ in zip(reader, range(50), strict=False):
            for index, value in enumerate(record[:len(names)]):
                shown = _stored(value.strip())[:60]
                if shown and len(samples[index]) < SAMPLES and shown not in samples[index]:
                    samples[index].append(shown)
    except csv.Error as exc:
        raise ImportFileError(f"Line {reader.line_num}: not valid CSV ({exc}).") from None
    guess = _guess(names, samples)
    certain = all(_key(name) in COLUMNS for name in names) and "email" in guess
    return CsvHeader(names, samples, delimiter, encoding, guess, certain)


def _key(name: str) -> str:
    """A header compared without case, accents, spaces and separators ("Prénom" → prenom)."""
    plain = unicodedata.normalize("NFKD", name.lstrip("\ufeff")).encode("ascii", "ignore")
    return _HEADER_JUNK.sub("", plain.decode().lower())


def _guess(names: list[str], samples: list[list[str]]) -> list[str]:
    guess: list[str] = []
    for name in names:
        key = GUESSES.get(_key(name), IGNORE)
        guess.append(IGNORE if key in guess else key)  # a field fills one column: the first
    if "email" not in guess:
        for index, values in enumerate(samples):
            if guess[index] == IGNORE and values and all(map(_PLAIN_EMAIL.match, values)):
                guess[index] = "email"
                break
    return guess


def _header_names(header: list[str] | None) -> list[str]:
    if header is None:
        raise ImportFileError("The file is empty: the first line must name the columns "
                              "(for example email, firstName, lastName).")
    if len(header) > MAX_COLUMNS:
        raise ImportFileError(f"Line 1 names {len(header):,} columns: at most {MAX_COLUMNS} "
                              "are read. Keep the guests' columns (email, names, order "
                              "reference) and upload the file again.")
    if not "".join(header).strip():
        raise ImportFileError("Line 1 is blank: the first line must name the columns "
                              "(for example email, firstName, lastName).")
    if any(_NOT_UTF8.search(name) for name in header):
        raise ImportFileError("Line 1: the header is not UTF-8 text; save the file as "
                              "“CSV UTF-8” and upload it again.")
    data = next((name.strip() for name in header if _PLAIN_EMAIL.match(name.strip())), None)
    if data:
        raise ImportFileError(f"Line 1 holds a guest ({data}), not the names of the columns: "
                              "add a first line such as email,firstName,lastName.")
    return [name.lstrip("\ufeff").strip() for name in header]


def guests_csv_parse(*, data: bytes, account_id: uuid.UUID | str, max_errors: int = 1000,
                     fields: list[str] | None = None) -> ParsedFile:
    """Every data row checked on its own: an id (a GUID, else an external id or none, mapped
    to a derived GUID in ``account_id``'s namespace; unique in the file: a later duplicate is
    an error), a valid email, lengths, UTF-8 text. ``fields`` is the confirmed mapping (one
    field per column); without it, the guess, which must find an email column. Formula-looking
    cells are neutralised and counted. Raises ``ImportFileError`` for problems of the whole
    file."""
    text, encoding = _text(data)
    namespace = uuid.uuid5(IMPORT_NAMESPACE, str(account_id))
    file_ns = uuid.uuid5(namespace, "file:" + hashlib.sha256(data).hexdigest())
    # Per-row text checks only when the file needs them (the common file is clean UTF-8).
    check_text = _NOT_UTF8.search(text) is not None or "\x00" in text
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(data))
    parsed = ParsedFile(encoding=encoding)
    seen: dict[uuid.UUID, int] = {}
    try:
        indexes, width = _indexes(next(reader, None), fields)
        named = indexes[1] is not None or indexes[2] is not None
        for record in reader:
            if len(record) <= 1 and not "".join(record).strip():
                continue  # blank line
            parsed.total += 1
            row, problems, formula = _row(record, indexes, width, reader.line_num, seen,
                                          check_text, (namespace, file_ns))
            if row is not None:
                parsed.rows.append(row)
                seen[row.id] = row.line
                _note(parsed, row, formula, named)
            else:
                _add_error(parsed, max_errors, reader.line_num, _raw(record, indexes[0]),
                           problems, record)
    except csv.Error as exc:
        raise ImportFileError(f"Line {reader.line_num}: not valid CSV ({exc}).") from None
    return parsed


def _text(data: bytes) -> tuple[str, str]:
    """The file's text and its encoding: UTF-8, else Windows-1252 when nothing in it is UTF-8
    beyond ASCII (a Windows spreadsheet's "CSV"). Undecodable bytes of a UTF-8 file become
    lone surrogates: the rows holding them get a row error."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or b"\x00" in data[:4096]:
        raise ImportFileError("The file is UTF-16 or binary, not UTF-8 text: save it as "
                              "“CSV UTF-8” and upload it again.")
    text = data.decode("utf-8-sig", errors="surrogateescape")
    if _NOT_UTF8.search(text) and not _UTF8_TEXT.search(text):
        try:
            return data.decode("cp1252"), "cp1252"
        except UnicodeDecodeError:
            pass
    return text, "utf-8"


def _delimiter(data: bytes) -> str:
    """Comma, or the semicolon / tab a spreadsheet in some locales writes instead."""
    first = data[:4096].split(b"\n", 1)[0]
    return max((",", ";", "\t"), key=lambda d: first.count(d.encode()))


def _indexes(header: list[str] | None,
             fields: list[str] | None) -> tuple[list[int | None], int]:
    """The column of each of FIELDS (None: no column) and the header's width."""
    names = _header_names(header)
    if fields is None:
        fields = _guess(names, [])
        missing = [name for name in REQUIRED if name not in fields]
        if missing:
            raise ImportFileError(
                f"Line 1: missing column(s) {', '.join(missing)}. Expected a header with email, "
                f"firstName, lastName and optionally id and correlationId; found "
                f"{', '.join(repr(h) for h in names[:10]) or 'nothing'}.")
    elif len(fields) != len(names) or "email" not in fields:
        raise ImportFileError("The chosen columns do not fit this file: choose them again.")
    return [fields.index(name) if name in fields else None for name in FIELDS], len(names)


def _row(record: list[str], indexes: list[int | None], width: int, line: int,
         seen: dict[uuid.UUID, int], check_text: bool,
         namespaces: tuple[uuid.UUID, uuid.UUID]) -> tuple[GuestRow | None, list[str], bool]:
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
    external = external_id or ""
    formula = (formula_like(first_name) or formula_like(last_name)
               or formula_like(correlation_id) or formula_like(external))
    if formula:
        first_name, last_name, correlation_id, external = map(
            _safe, (first_name, last_name, correlation_id, external))
    for name, value in (("id", external), ("firstName", first_name),
                        ("lastName", last_name), ("email", email),
                        ("correlationId", correlation_id)):
        if len(value) > MAX_LENGTHS[name]:
            problems.append(f"{name}: longer than {MAX_LENGTHS[name]} characters")
    if problems:
        return None, problems, False
    return GuestRow(line, guest_id, first_name, last_name, email,
                    correlation_id or external or None, external or None,
                    not raw_id), [], formula


def formula_like(value: str) -> bool:
    """Whether a spreadsheet could read the cell as a formula: it starts with one of OWASP's
    characters, or its first character that is neither white space nor invisible (a
    no-break space, a new line, a zero-width space) is = + - @ once NFKC-normalised (the
    full-width "\uff1d" is "=")."""
    return bool(_formula_start(value))


def _formula_start(value: str) -> str:
    """The formula character ``value`` starts with, as ``formula_like`` finds it ("": none)."""
    first = value[:1]
    if first in _FORMULA_FIRST:
        return first
    if not first or (first.isascii() and not first.isspace()):
        return ""  # the common cell: a letter, a digit
    for char in value:
        if char.isspace() or unicodedata.category(char) in ("Cc", "Cf", "Zs", "Zl", "Zp"):
            continue
        start = unicodedata.normalize("NFKC", char).lstrip()[:1]
        return start if start in _FORMULA_FIRST else ""
    return ""


def _safe(value: str) -> str:
    """A text cell as OWASP advises for CSV injection: a formula-looking value
    (``formula_like``) gets a single quote in front, so that no spreadsheet (nor a subject
    built from it) runs it."""
    return "'" + value if formula_like(value) else value


def _note(parsed: ParsedFile, row: GuestRow, formula: bool, named: bool) -> None:
    if formula:
        parsed.formulas.append(row.line)
    if named and not (row.first_name or row.last_name):
        parsed.nameless.append(row.line)


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
    if start := _formula_start(value):
        problems.append(f"email: {_shown(value)} starts with “{start}”, which a "
                        "spreadsheet runs as a formula")
        return
    if _PLAIN_EMAIL.match(value) and len(value) <= 254:
        return  # the common address, without the full validator's cost
    try:
        validate_email(value)
    except ValidationError:
        problems.append(f"email: {_shown(value)} is not a valid email address")


def _stored(value: str) -> str:
    """``value`` as PostgreSQL can store it: no NUL, no lone surrogate (U+FFFD instead)."""
    return _NOT_UTF8.sub("\ufffd", value.replace("\x00", "\ufffd"))


def _shown(value: str) -> str:
    """A value quoted in an error: short, and storable (no NUL or lone surrogate)."""
    clean = _NOT_UTF8.sub("\ufffd", value.replace("\x00", ""))
    return repr(clean[:60] + ("…" if len(clean) > 60 else ""))


def _add_error(parsed: ParsedFile, limit: int, line: int, raw_id: str,
               problems: list[str], record: list[str]) -> None:
    parsed.invalid += 1
    if len(parsed.errors) < limit:
        parsed.errors.append({"line": line, "id": _shown(raw_id)[1:-1], "errors": problems,
                              "cells": _cells(record)})


def _cells(record: list[str]) -> list[str]:
    """A rejected row's cells as the file has them (storable, capped): the rejected-rows CSV."""
    return [_stored(value)[:MAX_CELL] for value in record[:MAX_CELLS]]


def guests_csv_records(*, data: bytes, lines: set[int]) -> dict[int, list[str]]:
    """The cells of the rows at ``lines`` (a second reading, for rows found wrong after
    parsing: an id another account has)."""
    reader = csv.reader(io.StringIO(_text(data)[0], newline=""), delimiter=_delimiter(data))
    found: dict[int, list[str]] = {}
    for record in reader:
        if reader.line_num in lines:
            found[reader.line_num] = _cells(record)
            if len(found) == len(lines):
                break
    return found


def guests_csv_rejected(*, guest_import: GuestImport) -> str:
    """The rejected rows as a CSV for a spreadsheet: line, reason, then the row's own cells
    under the file's header, every cell formula-safe (OWASP: quote in front, all quoted)."""
    mapping = guest_import.mapping or {}
    out = io.StringIO()
    writer = csv.writer(out, delimiter=mapping.get("delimiter", ","), quoting=csv.QUOTE_ALL)
    writer.writerow(["Line", "Reason", *map(_safe, mapping.get("headers", []))])
    for error in guest_import.errors:
        writer.writerow([error["line"], "; ".join(error["errors"]),
                         *map(_safe, error.get("cells", []))])
    return "\ufeff" + out.getvalue()  # the BOM: a spreadsheet then reads the accents right


def _batches(rows: list[GuestRow], size: int) -> Iterator[list[GuestRow]]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


def _owners(ids: list[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
    """The account of each id that already exists (one query)."""
    return dict(Attendee.objects.filter(id__in=ids).values_list("id", "account_id"))


# --- services -------------------------------------------------------------------------------

def guest_import_create(*, event: Event, user: Any, filename: str, data: bytes) -> GuestImport:
    """Store an uploaded file (the caller has checked its size) and read its header: a file
    with only the documented column names is validated at once (queued), any other waits for
    staff to confirm its columns (``mapping``); an unreadable one is a failed import."""
    Status = GuestImport.Status
    try:
        header = guests_csv_header(data=data)
    except ImportFileError as exc:
        header, file_error = None, str(exc)
    else:
        file_error = ""
    status = (Status.FAILED if header is None
              else Status.UPLOADED if header.certain else Status.MAPPING)
    with transaction.atomic():
        guest_import = GuestImport.objects.create(
            account_id=event.account_id, event=event, uploaded_by=user,
            filename=filename[:255], size=len(data), status=status, file_error=file_error,
            mapping=header.as_mapping() if header else {},
            finished_at=timezone.now() if header is None else None)
        GuestImportFile.objects.create(guest_import=guest_import, data=data)
        if status == Status.UPLOADED:
            _queue_validation(guest_import.id)
    return guest_import


def _queue_validation(import_id: uuid.UUID) -> None:
    transaction.on_commit(
        lambda: jobs.publish("guests.validate_import", str(import_id)), robust=True)


def mapping_problems(*, fields: list[str]) -> list[str]:
    """Why a choice of one field per column cannot be used (empty: it can)."""
    problems = []
    if "email" not in fields:
        problems.append("Choose the column that holds the email addresses: Herald sends the "
                        "tickets there.")
    for key, label in FIELD_LABELS.items():
        if fields.count(key) > 1:
            problems.append(f"“{label}” is chosen for {fields.count(key)} columns: choose it "
                            "for one column only.")
    return problems


def guest_import_map(*, guest_import: GuestImport, fields: list[str]) -> bool:
    """Use ``fields`` (one per column of the file, IGNORE for a column not used) and check
    the rows again with them. From the mapping step or a checked file not yet confirmed;
    False once the import has started. Raises ``ImportFileError`` for an unusable choice."""
    headers = (guest_import.mapping or {}).get("headers", [])
    if len(fields) != len(headers) or any(f not in FIELD_LABELS and f != IGNORE for f in fields):
        raise ImportFileError("The chosen columns do not fit this file: choose them again.")
    if problems := mapping_problems(fields=fields):
        raise ImportFileError(" ".join(problems))
    Status = GuestImport.Status
    with transaction.atomic():
        claimed = GuestImport.objects.filter(
            id=guest_import.id, status__in=(Status.MAPPING, Status.VALIDATED)).update(
            status=Status.UPLOADED, mapping={**guest_import.mapping, "fields": fields},
            total=0, valid=0, invalid=0, existing=0, errors=[], preview=[], warnings=[],
            updated_at=timezone.now())
        if claimed:
            _queue_validation(guest_import.id)
    return bool(claimed)


def _fields(guest_import: GuestImport) -> list[str] | None:
    """The confirmed mapping (None for an import made before the mapping step: the guess)."""
    return (guest_import.mapping or {}).get("fields")


def guest_import_validate(*, import_id: Any) -> None:
    """Counts, the first row errors, warnings and a preview; nothing is written to Attendee.
    An id that another account's guest holds is a row error; one this account has is skipped
    later."""
    guest_import = GuestImport.objects.filter(
        id=import_id, status=GuestImport.Status.UPLOADED).first()
    if guest_import is None:
        return
    limit = settings.HERALD_IMPORT_MAX_ERRORS
    data = _data(guest_import)
    try:
        parsed = guests_csv_parse(data=data, max_errors=limit, fields=_fields(guest_import),
                                  account_id=guest_import.account_id)
    except ImportFileError as exc:
        _finish(guest_import.id, GuestImport.Status.UPLOADED, status=GuestImport.Status.FAILED,
                file_error=str(exc))
        return
    existing, foreign = _existing(guest_import, parsed)
    if foreign:
        cells = guests_csv_records(data=data, lines={error["line"] for error in foreign})
        parsed.errors += [{**error, "cells": cells.get(error["line"], [])} for error in foreign]
    parsed.errors.sort(key=lambda error: error["line"])
    GuestImport.objects.filter(id=guest_import.id, status=GuestImport.Status.UPLOADED).update(
        status=GuestImport.Status.VALIDATED, total=parsed.total,
        valid=len(parsed.rows) - len(foreign), invalid=parsed.invalid + len(foreign),
        existing=existing, errors=parsed.errors[:limit], warnings=_warnings(parsed),
        preview=[_preview(row) for row in parsed.rows[:PREVIEW_ROWS]],
        updated_at=timezone.now())


def _existing(guest_import: GuestImport,
              parsed: ParsedFile) -> tuple[int, list[dict[str, Any]]]:
    """How many valid rows this account has already, and the errors of those another has."""
    existing, foreign = 0, []
    for batch in _batches(parsed.rows, settings.HERALD_IMPORT_BATCH_SIZE):
        owners = _owners([row.id for row in batch])
        for row in batch:
            owner = owners.get(row.id)
            if owner == guest_import.account_id:
                existing += 1
            elif owner is not None:
                foreign.append({"line": row.line, "id": str(row.id), "errors": [
                    "id: already used by a guest of another account"]})
    return existing, foreign


def _warnings(parsed: ParsedFile) -> list[dict[str, Any]]:
    """What the preview warns about (the rows are valid and will be imported)."""
    warnings: list[dict[str, Any]] = []
    for code, lines in (("formula", parsed.formulas), ("nameless", parsed.nameless)):
        if lines:
            warnings.append({"code": code, "count": len(lines), "lines": lines[:WARNING_LINES]})
    return warnings


def guest_import_warnings(*, guest_import: GuestImport, fields: list[str] | None = None,
                          refused: bool = False) -> list[str]:
    """The warnings of the mapping step and the preview, in words: columns not used, no email
    column (unless ``refused``: the form's error says it), no name column, the encoding,
    formula-looking cells and rows without a name."""
    mapping = guest_import.mapping or {}
    headers = mapping.get("headers", [])
    fields = fields if fields is not None else mapping.get("fields") or []
    texts = []
    unused = [name or f"column {index + 1}" for index, (name, key)
              in enumerate(zip(headers, fields, strict=False)) if key == IGNORE]
    if unused:
        texts.append(f"Not imported: the column{'s' if len(unused) > 1 else ''} "
                     f"{', '.join(f'“{name}”' for name in unused)} (no field chosen).")
    if fields and "email" not in fields and not refused:
        texts.append("No column holds the email addresses: choose it, or the file cannot be "
                     "imported.")
    if fields and not {"first_name", "last_name"} & set(fields):
        texts.append("No name column: every guest would have a blank name (“Hello ,” in "
                     "their ticket). Choose the first and last name columns.")
    if mapping.get("encoding", "utf-8") != "utf-8":
        texts.append("The file is not UTF-8: Herald read it as Windows text (Western "
                     "European). Check the accented names (é, ü, ñ); if they look wrong, save "
                     "the file as “CSV UTF-8” and upload it again.")
    for warning in guest_import.warnings:
        lines = ", ".join(map(str, warning["lines"]))
        if warning["count"] > len(warning["lines"]):
            lines += "…"
        texts.append(_WARNING_TEXTS[warning["code"]](warning["count"], lines))
    return texts


_WARNING_TEXTS = {
    "formula": lambda count, lines: (
        f"{count} row{'s' if count > 1 else ''} had a cell that a spreadsheet would run as a "
        f"formula (it starts with =, +, - or @), line{'s' if count > 1 else ''} {lines}: "
        "Herald keeps the text with a ' in front, so it is never run."),
    "nameless": lambda count, lines: (
        f"{count} row{'s' if count > 1 else ''} without a first or last name, "
        f"line{'s' if count > 1 else ''} {lines}: these guests would have a blank name."),
}


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
                                fields=_fields(guest_import),
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
        # Each guest's ticket key made here, so the reminders below carry the key stored.
        new = [(row.id, row.first_name, row.last_name, row.email, row.correlation_id,
                new_ticket_key()) for row in batch if row.id not in owners]
        rows_insert(Attendee, ("id", "first_name", "last_name", "email", "correlation_id",
                               "ticket_key"),
                    new, constants={"account_id": guest_import.account_id,
                                    "event_id": guest_import.event_id},
                    ignore_conflicts=True)
        reminders_schedule(event=guest_import.event, attendees=[Attendee(
            id=row[0], first_name=row[1], last_name=row[2], email=row[3], correlation_id=row[4],
            ticket_key=row[5], account_id=guest_import.account_id,
            event_id=guest_import.event_id) for row in new])
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
        Status.MAPPING: "Waiting for the columns to be confirmed.",
        Status.UPLOADED: "Checking the file…",
        Status.VALIDATED: "Checked: waiting for confirmation.",
        Status.IMPORTING: f"Imported {guest_import.processed:,} of "
                          f"{guest_import.to_process or guest_import.valid:,} rows…",
        Status.DONE: f"Done: {guest_import.imported:,} guests imported, "
                     f"{guest_import.skipped:,} existing ids skipped.",
        Status.FAILED: guest_import.file_error,
    }
    finished = (Status.MAPPING, Status.VALIDATED, Status.DONE, Status.FAILED)
    return {"status": guest_import.status, "finished": guest_import.status in finished,
            "bars": {"rows": [done, total]}, "text": texts[guest_import.status]}
