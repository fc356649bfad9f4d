"""The base of every API view and the exception handler every family shares.

A view declares its family (``family = NOTIFICATIONS``, ``api.families``): that gives its
authentication and the shape of its errors. ``HeraldAPIView`` adds what every endpoint does
alike: JSON only, a rate limit per API key (``X-RateLimit-*`` headers), idempotency keys on
POST, test keys kept off shared configuration.
"""

from typing import Any
from uuid import UUID

from rest_framework import exceptions, permissions
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import ApiKey
from api.authentication import HasApiKey
from api.families import CHECKIN, JSON, Family, normalise
from api.guard import auth_failure_record
from api.idempotency import Replay, idempotency_claim, idempotency_finish, idempotency_release
from api.ratelimit import RateLimited, rate_limit_hit
from common import metrics
from common.errors import HeraldError, NotFound


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's ``EXCEPTION_HANDLER``: the error in the view's family's shape."""
    # A view of no family (the schema's own views): check-in's shape, as for unknown paths.
    family: Family = getattr(context.get("view"), "family", CHECKIN)
    failure = normalise(exc)
    if failure is None:
        return None
    response = Response(family.body(failure), status=failure.status, content_type=(
        None if family.media_type == JSON else family.media_type))
    if failure.status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="herald"'
        if context.get("request") is not None:
            auth_failure_record(context["request"])
    if isinstance(exc, exceptions.Throttled) and exc.wait:
        response["Retry-After"] = str(int(exc.wait))
    if failure.status == 429:
        metrics.rate_limited(_limit_hit(exc))
    return response


def _limit_hit(exc: Exception) -> str:
    """Which limit a 429 is (the metrics' ``outcome``): the failed-authentication guard
    answers DRF's ``Throttled``; the per-second limit's ``RateLimited`` has a window, the
    daily quota's none."""
    if isinstance(exc, RateLimited):
        return "rate_limit" if exc.window is not None else "daily_quota"
    return "auth_failures"


TEST_KEY_READ_ONLY = ("Test keys are read-only on configuration (templates, events, webhook "
                      "endpoints, brands, sender domains) and on contacts: they may "
                      "read them to rehearse with them, but changing them needs a live key.")


class HeraldAPIView(APIView):
    """Base of every API view: its ``family`` sets its authentication and error shape."""

    family: Family  # every view names one (api.families)
    # True on the views of the configuration both modes share (templates, events, webhook
    # endpoints, brands, sender domains): a test key may read it but never change it (403).
    configuration = False
    _claim = None  # this request's IdempotentRequest, while it runs
    _window = None  # this request's rate-limit Window, for the headers

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "family" in cls.__dict__:
            cls.authentication_classes = list(cls.family.authentication)
            cls.permission_classes = [HasApiKey]

    def initial(self, request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        _refuse_nul(request)
        if request.method == "POST":
            self._claim = idempotency_claim(request, family=self.family)

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
    try:
        pk = UUID(str(pk))
    except ValueError:
        raise NotFound(what) from None
    row = queryset.filter(pk=pk).first()
    if row is None:
        raise NotFound(what)
    return row
