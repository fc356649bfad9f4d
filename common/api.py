"""Shared API plumbing: strict serializers and one exception handler per API family.

A view names its family with ``error_style``; the handler renders every error (validation,
authentication, not-found, ``HeraldError``) in that family's documented shape.
"""

from typing import Any

from django.http import Http404
from rest_framework import exceptions, permissions, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import ApiKeyAuthentication, HasApiKey
from accounts.guard import auth_failure_record
from accounts.models import ApiKey
from common.errors import HeraldError
from common.headers import ONE_LINE, header_problem
from common.idempotency import Replay, idempotency_claim, idempotency_finish, idempotency_release
from common.ratelimit import rate_limit_hit


class StrictSerializer(serializers.Serializer):
    """Rejects fields it does not know, so a typo (``commsTemplateID``) is an error, not a no-op."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


class Guid(serializers.UUIDField):
    """A GUID given as a JSON string (DRF's UUIDField would also take an integer)."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)


class Str(serializers.CharField):
    """A JSON string: numbers are not silently turned into text."""

    default_error_messages = {"not_a_string": "Must be a string."}

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


class HeaderStr(Str):
    """A string that goes into an email header (a subject, a name): one line, or refused."""

    default_error_messages = {"not_one_line": ONE_LINE[0].upper() + ONE_LINE[1:]}

    def to_internal_value(self, data: Any) -> Any:
        value = super().to_internal_value(data)
        if header_problem(value):
            self.fail("not_one_line")
        return value


class Email(serializers.EmailField):
    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data).strip()


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


def comms_error_body(exc: Exception) -> tuple[int, dict[str, Any]] | None:
    """The check-in & comms family (spec 000): ``{error, message, ...}`` camelCase."""
    if isinstance(exc, HeraldError):
        return exc.status, {"error": exc.code, "message": exc.message, **exc.extra}
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        if set(fields) == {""} or set(fields) == {"non_field_errors"}:
            message = next(iter(fields.values()))
            return 400, {"error": "validation_error", "message": message, "fields": {}}
        names = ", ".join(sorted(fields))
        return 400, {
            "error": "validation_error",
            "message": f"Invalid request: {names}.",
            "fields": fields,
        }
    if isinstance(exc, exceptions.ParseError):
        return 400, {"error": "invalid_json", "message": "The request body is not valid JSON."}
    if isinstance(exc, exceptions.UnsupportedMediaType):
        return 415, {
            "error": "unsupported_media_type",
            "message": "Send the body as JSON with Content-Type: application/json.",
        }
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        return 401, {"error": "unauthorized", "message": str(exc.detail)}
    if isinstance(exc, exceptions.PermissionDenied):
        return 403, {"error": "forbidden", "message": str(exc.detail)}
    if isinstance(exc, Http404 | exceptions.NotFound):
        return 404, {"error": "not_found", "message": "Not found."}
    if isinstance(exc, exceptions.MethodNotAllowed):
        return 405, {"error": "method_not_allowed", "message": str(exc.detail)}
    if isinstance(exc, exceptions.Throttled):
        return 429, {"error": "rate_limited", "message": str(exc.detail)}
    if isinstance(exc, exceptions.APIException):
        return exc.status_code, {"error": exc.default_code, "message": str(exc.detail)}
    return None


# Spec 004's documented codes by HTTP status (its "Error Codes" table).
V004_CODES = {
    400: "VALIDATION_ERROR", 401: "UNAUTHORIZED", 402: "QUOTA_EXCEEDED", 403: "FORBIDDEN",
    404: "NOT_FOUND", 409: "CONFLICT", 429: "RATE_LIMITED", 500: "SERVER_ERROR",
    502: "PROVIDER_ERROR",
}


def v004_error_body(exc: Exception) -> tuple[int, dict[str, Any]] | None:
    """The event-notifications family (spec 004): ``{"error": message, "code": CODE}``."""
    if isinstance(exc, HeraldError):
        code = exc.code if exc.code.isupper() else V004_CODES.get(exc.status, exc.code.upper())
        return exc.status, {"error": exc.message, "code": code}
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        message = "; ".join(
            f"{name}: {text}" if name and name != "non_field_errors" else text
            for name, text in sorted(fields.items()))
        return 400, {"error": message, "code": "VALIDATION_ERROR"}
    if isinstance(exc, exceptions.ParseError):
        return 400, {"error": "The request body is not valid JSON.", "code": "VALIDATION_ERROR"}
    if isinstance(exc, exceptions.UnsupportedMediaType):
        return 415, {"error": "Send the body as JSON with Content-Type: application/json.",
                     "code": "VALIDATION_ERROR"}
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        return 401, {"error": str(exc.detail), "code": "UNAUTHORIZED"}
    if isinstance(exc, exceptions.PermissionDenied):
        return 403, {"error": str(exc.detail), "code": "FORBIDDEN"}
    if isinstance(exc, Http404 | exceptions.NotFound):
        return 404, {"error": "Not found.", "code": "NOT_FOUND"}
    if isinstance(exc, exceptions.MethodNotAllowed):
        return 405, {"error": str(exc.detail), "code": "METHOD_NOT_ALLOWED"}
    if isinstance(exc, exceptions.Throttled):
        return 429, {"error": str(exc.detail), "code": "RATE_LIMITED"}
    if isinstance(exc, exceptions.APIException):
        code = V004_CODES.get(exc.status_code, str(exc.default_code).upper())
        return exc.status_code, {"error": str(exc.detail), "code": code}
    return None


def v003_error_body(exc: Exception) -> tuple[int, dict[str, Any]] | None:
    """The email-history family (spec 003): ``{"Error": "why"}``, PascalCase field names."""
    if isinstance(exc, HeraldError):
        return exc.status, {"Error": exc.message}
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        return 400, {"Error": " ".join(
            f"{name}: {text}" if name and name != "non_field_errors" else text
            for name, text in sorted(fields.items()))}
    if isinstance(exc, exceptions.ParseError):
        return 400, {"Error": "The request body is not valid JSON."}
    if isinstance(exc, exceptions.UnsupportedMediaType):
        return 415, {"Error": "Send the body as JSON with Content-Type: application/json."}
    if isinstance(exc, Http404 | exceptions.NotFound):
        return 404, {"Error": "Not found."}
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        return 401, {"Error": str(exc.detail)}
    if isinstance(exc, exceptions.APIException):
        return exc.status_code, {"Error": str(exc.detail)}
    return None


# RFC 9457 problem types, as ASP.NET Core (spec 002's server) names them.
PROBLEM_TYPES = {
    400: "https://tools.ietf.org/html/rfc9110#section-15.5.1",
    401: "https://tools.ietf.org/html/rfc9110#section-15.5.2",
    403: "https://tools.ietf.org/html/rfc9110#section-15.5.4",
    404: "https://tools.ietf.org/html/rfc9110#section-15.5.5",
    405: "https://tools.ietf.org/html/rfc9110#section-15.5.6",
    409: "https://tools.ietf.org/html/rfc9110#section-15.5.10",
    415: "https://tools.ietf.org/html/rfc9110#section-15.5.16",
    422: "https://tools.ietf.org/html/rfc9110#section-15.5.21",
    429: "https://tools.ietf.org/html/rfc6585#section-4",
}
PROBLEM_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
                  405: "Method Not Allowed", 409: "Conflict", 415: "Unsupported Media Type",
                  422: "Unprocessable Content", 429: "Too Many Requests"}


def problem(status: int, detail: str, title: str | None = None,
            **extra: Any) -> dict[str, Any]:
    return {"type": PROBLEM_TYPES.get(status, "about:blank"),
            "title": title or PROBLEM_TITLES.get(status, "Error"), "status": status,
            "detail": detail, **extra}


def problem_error_body(exc: Exception) -> tuple[int, dict[str, Any]] | None:
    """The multi-channel family (spec 002): RFC 9457 problem details; validation errors
    list every field (``errors: {field: [messages]}``) as ASP.NET's ValidationProblemDetails."""
    if isinstance(exc, HeraldError):
        return exc.status, problem(exc.status, exc.message, **exc.extra)
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"": exc.detail}
        errors: dict[str, list[str]] = {}
        for name, message in _flatten(detail).items():
            errors.setdefault("" if name == "non_field_errors" else name, []).append(message)
        summary = "; ".join(f"{k}: {v[0]}" if k else v[0] for k, v in sorted(errors.items()))
        return 400, problem(400, summary, "One or more validation errors occurred.",
                            errors=errors)
    if isinstance(exc, exceptions.ParseError):
        return 400, problem(400, "The request body is not valid JSON.")
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        return 401, problem(401, str(exc.detail))
    if isinstance(exc, Http404 | exceptions.NotFound):
        return 404, problem(404, "Not found.")
    if isinstance(exc, exceptions.APIException):
        return exc.status_code, problem(exc.status_code, str(exc.detail))
    return None


ERROR_STYLES = {"comms": comms_error_body, "v003": v003_error_body, "v004": v004_error_body,
                "problem": problem_error_body}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    view = context.get("view")
    style = getattr(view, "error_style", "comms")
    rendered = ERROR_STYLES[style](exc)
    if rendered is None:
        return None
    status, body = rendered
    response = Response(body, status=status, content_type=(
        "application/problem+json" if style == "problem" else None))
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="herald"'
        if context.get("request") is not None:
            auth_failure_record(context["request"])
    if isinstance(exc, exceptions.Throttled) and exc.wait:
        response["Retry-After"] = str(int(exc.wait))
    return response


TEST_KEY_READ_ONLY = ("Test keys are read-only on configuration (templates, events, webhook "
                      "endpoints, brands, sender domains) and on contacts: they may "
                      "read them to rehearse with them, but changing them needs a live key.")


class HeraldAPIView(APIView):
    """Base of every API view: JSON only, API-key authentication, one error shape per family,
    a rate limit per API key (``X-RateLimit-*`` headers) and idempotency keys on POST."""

    error_style = "comms"
    idempotency_layer = True  # False: the view handles idempotency keys itself
    # True on the views of the configuration both modes share (templates, events, webhook
    # endpoints, brands, sender domains): a test key may read it but never change it (403).
    configuration = False
    _claim = None  # this request's IdempotentRequest, while it runs
    _window = None  # this request's rate-limit Window, for the headers

    def initial(self, request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        _refuse_nul(request)
        if self.idempotency_layer and request.method == "POST":
            self._claim = idempotency_claim(request, style=self.error_style)

    def check_permissions(self, request) -> None:
        super().check_permissions(request)
        if (self.configuration and request.method not in permissions.SAFE_METHODS
                and isinstance(request.auth, ApiKey) and request.auth.mode == ApiKey.Mode.TEST):
            raise exceptions.PermissionDenied(TEST_KEY_READ_ONLY)

    def check_throttles(self, request) -> None:
        super().check_throttles(request)
        if isinstance(request.auth, ApiKey):
            self._window = rate_limit_hit(api_key=request.auth)

    def handle_exception(self, exc: Exception):
        if isinstance(exc, Replay):
            return exc.response
        try:
            response = super().handle_exception(exc)
        except Exception:
            idempotency_release(self._claim)  # a crash: a retry may run again
            self._claim = None
            raise
        if isinstance(exc, HeraldError):  # RateLimited, InProgress: Retry-After and the like
            for name, value in getattr(exc, "headers", {}).items():
                response[name] = value
        return response

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        idempotency_finish(self._claim, response)
        self._claim = None
        if self._window is not None:
            for name, value in self._window.headers().items():
                response.setdefault(name, value)
        return response

    def get_account(self):
        return self.request.auth.account


class BearerKeyView(HeraldAPIView):
    """The families authenticated by ``Authorization: Bearer <key>`` alone (002, 003, 004)."""

    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [HasApiKey]


class V004View(BearerKeyView):
    """Spec 004's family: ``{success, …}`` envelopes, errors ``{error, code}``."""

    error_style = "v004"


def _refuse_nul(request) -> None:
    """NUL characters in the path or the query (no database text can hold them): a 400 in
    the family's shape instead of a database error."""
    if "\x00" in request.path:
        raise exceptions.ValidationError({"path": "NUL characters are not allowed."})
    for name, values in request.query_params.lists():
        if "\x00" in name or any("\x00" in value for value in values):
            raise exceptions.ValidationError({name.replace("\x00", ""): "NUL characters are "
                                              "not allowed."})


def get_owned(queryset, pk: object, what: str):
    """The row with this id in the caller's scoped queryset, else 404 (a malformed id too)."""
    from uuid import UUID

    from common.errors import NotFound

    try:
        pk = UUID(str(pk))
    except ValueError:
        raise NotFound(what) from None
    row = queryset.filter(pk=pk).first()
    if row is None:
        raise NotFound(what)
    return row
