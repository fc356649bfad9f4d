"""The API families, each declared once, and the one way an error becomes a response.

A family is what the four API documents each define for their endpoints: URL prefixes, how a
caller authenticates, the error body and its media type, the casing of field names. A view
names its family (``family = NOTIFICATIONS``); the 404/400/500 pages Django answers before
any view find theirs by path (``family_for_path``).

Every error goes through one normaliser (``normalise``: an exception → status, code, message,
field errors, extras) and then through its family's renderer, so a new exception type is
handled in one place and every family shows it in its own documented shape.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions

from api.authentication import ApiKeyAuthentication, SubscriptionKeyAuthentication
from common.errors import HeraldError

JSON = "application/json"
PROBLEM = "application/problem+json"
Body = dict[str, Any]
Schema = dict[str, Any]

# Herald's fixed sentences for what the caller sent wrong in any family.
INVALID_JSON = "The request body is not valid JSON."
SEND_JSON = "Send the body as JSON with Content-Type: application/json."
NOT_FOUND = "Not found."
TOO_LARGE = "The request body is larger than 5 MB."


@dataclass(frozen=True)
class Failure:
    """An error as every family sees it, before its shape is chosen."""

    status: int
    code: str  # machine code: a HeraldError's, else DRF's (``not_found``, ``validation_error``)
    message: str
    # Validation errors only: the first message per field (dotted for nesting, "" or
    # "non_field_errors" for the request as a whole); None for every other error.
    fields: dict[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # a HeraldError's extras
    said: str = ""  # the exception's own words, where ``message`` is Herald's fixed sentence


def _flatten(detail: Any) -> dict[str, str]:
    """DRF's nested error detail as ``{"field": "first message"}`` (dotted for nesting)."""
    if isinstance(detail, dict):
        out: dict[str, str] = {}
        for key, value in detail.items():
            for sub, message in _flatten(value).items():
                out[f"{key}.{sub}" if sub else str(key)] = message
        return out
    if isinstance(detail, list) and detail:
        return _flatten(detail[0])
    return {"": str(detail)}


def normalise(exc: Exception) -> Failure | None:
    """The one mapping of exceptions to errors; None for an exception that is a 500."""
    if isinstance(exc, HeraldError):
        return Failure(exc.status, exc.code, exc.message, extra=exc.extra)
    if isinstance(exc, Http404 | exceptions.NotFound):
        return Failure(404, "not_found", NOT_FOUND)
    if isinstance(exc, RequestDataTooBig):  # over DATA_UPLOAD_MAX_MEMORY_SIZE, read or not
        return Failure(413, "payload_too_large", TOO_LARGE)
    if not isinstance(exc, exceptions.APIException):
        return None
    said = str(exc.detail)
    if isinstance(exc, exceptions.ValidationError):
        return Failure(400, "validation_error", said, fields=_flatten(exc.detail))
    if isinstance(exc, exceptions.ParseError):
        return Failure(400, "invalid_json", INVALID_JSON, said=said)
    if isinstance(exc, exceptions.UnsupportedMediaType):
        return Failure(415, "unsupported_media_type", SEND_JSON, said=said)
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        return Failure(401, "unauthorized", said)
    if isinstance(exc, exceptions.PermissionDenied):
        return Failure(403, "forbidden", said)
    if isinstance(exc, exceptions.Throttled):
        return Failure(429, "rate_limited", said)
    return Failure(exc.status_code, str(exc.default_code), said)


def _field_sentences(fields: dict[str, str]) -> list[str]:
    """``name: message`` per field (the request-wide ones as they are), by field name."""
    return [f"{name}: {text}" if name and name != "non_field_errors" else text
            for name, text in sorted(fields.items())]


# --- one renderer per family ---------------------------------------------------------------

def checkin_body(failure: Failure) -> Body:
    """Spec 000 (check-in & comms): ``{error: code, message, …}``; a 400 for invalid fields
    names them and gives the first message of each in ``fields``."""
    if failure.fields is None:
        return {"error": failure.code, "message": failure.message, **failure.extra}
    if set(failure.fields) in ({""}, {"non_field_errors"}):
        return {"error": failure.code, "message": next(iter(failure.fields.values())),
                "fields": {}}
    names = ", ".join(sorted(failure.fields))
    return {"error": failure.code, "message": f"Invalid request: {names}.",
            "fields": failure.fields}


# Spec 004's documented codes by HTTP status (its "Error Codes" table), and 415, which its
# table leaves out: a body Herald cannot read is invalid input. A status the table leaves out
# otherwise has a specific code of its own (413: ``PAYLOAD_TOO_LARGE``).
V004_CODES = {
    400: "VALIDATION_ERROR", 401: "UNAUTHORIZED", 402: "QUOTA_EXCEEDED", 403: "FORBIDDEN",
    404: "NOT_FOUND", 409: "CONFLICT", 415: "VALIDATION_ERROR", 429: "RATE_LIMITED",
    500: "SERVER_ERROR", 502: "PROVIDER_ERROR",
}


def notifications_body(failure: Failure) -> Body:
    """Spec 004 (event notifications): ``{"error": message, "code": CODE}``; a code already in
    capitals is the spec's own, any other is the status's code in the spec's table."""
    code = failure.code if failure.code.isupper() else V004_CODES.get(
        failure.status, failure.code.upper())
    message = failure.message
    if failure.fields is not None:
        message = "; ".join(_field_sentences(failure.fields))
    return {"error": message, "code": code}


def emails_body(failure: Failure) -> Body:
    """Spec 003 (email history): ``{"Error": "why"}``."""
    if failure.fields is not None:
        return {"Error": " ".join(_field_sentences(failure.fields))}
    return {"Error": failure.message}


# RFC 9457 problem types, as ASP.NET Core (spec 002's server) names them.
PROBLEM_TYPES = {
    400: "https://tools.ietf.org/html/rfc9110#section-15.5.1",
    401: "https://tools.ietf.org/html/rfc9110#section-15.5.2",
    403: "https://tools.ietf.org/html/rfc9110#section-15.5.4",
    404: "https://tools.ietf.org/html/rfc9110#section-15.5.5",
    405: "https://tools.ietf.org/html/rfc9110#section-15.5.6",
    409: "https://tools.ietf.org/html/rfc9110#section-15.5.10",
    413: "https://tools.ietf.org/html/rfc9110#section-15.5.14",
    415: "https://tools.ietf.org/html/rfc9110#section-15.5.16",
    422: "https://tools.ietf.org/html/rfc9110#section-15.5.21",
    429: "https://tools.ietf.org/html/rfc6585#section-4",
}
PROBLEM_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
                  405: "Method Not Allowed", 409: "Conflict", 413: "Content Too Large",
                  415: "Unsupported Media Type",
                  422: "Unprocessable Content", 429: "Too Many Requests"}


def problem(status: int, detail: str, title: str | None = None, **extra: Any) -> Body:
    """An RFC 9457 problem details body."""
    return {"type": PROBLEM_TYPES.get(status, "about:blank"),
            "title": title or PROBLEM_TITLES.get(status, "Error"), "status": status,
            "detail": detail, **extra}


def multichannel_body(failure: Failure) -> Body:
    """Spec 002 (multi-channel): RFC 9457 problem details; validation errors list every field
    (``errors: {field: [messages]}``) as ASP.NET's ValidationProblemDetails. A 415 keeps the
    framework's own sentence, as ASP.NET's does."""
    if failure.fields is not None:
        errors: dict[str, list[str]] = {}
        for name, message in failure.fields.items():
            errors.setdefault("" if name == "non_field_errors" else name, []).append(message)
        summary = "; ".join(f"{k}: {v[0]}" if k else v[0] for k, v in sorted(errors.items()))
        return problem(400, summary, "One or more validation errors occurred.", errors=errors)
    detail = failure.said if failure.status == 415 else failure.message
    return problem(failure.status, detail, **failure.extra)


# --- the families ----------------------------------------------------------------------------

_STR = {"type": "string"}


@dataclass(frozen=True)
class Family:
    name: str
    prefixes: tuple[str, ...]  # URL path prefixes (for errors raised before any view)
    authentication: tuple[type, ...]  # DRF authentication classes of its views
    render: Callable[[Failure], Body]
    error_component: str  # the OpenAPI component of its error body
    error_schema: Schema
    media_type: str = JSON  # of its error bodies
    casing: str = "camelCase"  # of its field names
    key_reused_status: int = 422  # an idempotency key sent again with another request
    # The OpenAPI description of an operation whose view has no docstring of its own.
    description: str = ""

    def body(self, failure: Failure) -> Body:
        return self.render(failure)


CHECKIN = Family(
    name="checkin", prefixes=("/checkin/v1/api/", "/comms/v1/api/comms/"),
    # The bearer key and the account's Ocp-Apim-Subscription-Key, together.
    authentication=(SubscriptionKeyAuthentication,), render=checkin_body,
    error_component="CommsError", error_schema={
        "type": "object", "required": ["error", "message"],
        "properties": {"error": _STR, "message": _STR, "fields": {
            "type": "object", "additionalProperties": _STR,
            "description": "400 only: the first message per invalid field."}}},
    # Spec 000 already answers a reused key with 409 (its 422 is the "previous send
    # failed" body).
    key_reused_status=409,
    description="Spec 000/001 (check-in & comms): ``Authorization: Bearer <key>`` and the "
                "account's ``Ocp-Apim-Subscription-Key``, both required; errors "
                "``{error, message}``; an idempotency key reused for another request is a 409.",
)
MULTICHANNEL = Family(
    name="multichannel", prefixes=("/api/v1/communications",),
    authentication=(ApiKeyAuthentication,), render=multichannel_body,
    error_component="ProblemDetails", error_schema={
        "type": "object", "required": ["type", "title", "status", "detail"],
        "properties": {"type": _STR, "title": _STR, "status": {"type": "integer"},
                       "detail": _STR, "errors": {
                           "type": "object",
                           "additionalProperties": {"type": "array", "items": _STR}}}},
    media_type=PROBLEM,
    description="Spec 002 (multi-channel): ``Authorization: Bearer <key>``; errors are RFC 9457 "
                "problem details (``application/problem+json``).",
)
EMAILS = Family(
    name="emails", prefixes=("/v1/Email", "/v1/Brand"),
    authentication=(ApiKeyAuthentication,), render=emails_body,
    error_component="ErrorOut", error_schema={
        "type": "object", "required": ["Error"], "properties": {"Error": _STR}},
    casing="PascalCase",
    description="Spec 003 (email history): ``Authorization: Bearer <key>``; PascalCase "
                "fields; errors ``{Error}``.",
)
NOTIFICATIONS = Family(
    name="notifications", prefixes=("/v1/",),
    authentication=(ApiKeyAuthentication,), render=notifications_body,
    error_component="V004Error", error_schema={
        "type": "object", "required": ["error", "code"],
        "properties": {"error": _STR, "code": _STR}},
    description="Spec 004 (event notifications): ``Authorization: Bearer <key>`` (``live_`` "
                "or ``test_``); ``{success, …}`` envelopes; errors ``{error, code}``.",
)
# In the order paths are matched: the emails' /v1/Email before the notifications' /v1/.
FAMILIES = (EMAILS, NOTIFICATIONS, MULTICHANNEL, CHECKIN)


def family_for_path(path: str) -> Family:
    """The family of a URL path; check-in's for any path no family claims."""
    for family in FAMILIES:
        if path.startswith(family.prefixes):
            return family
    return CHECKIN
