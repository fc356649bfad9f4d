"""API-key authentication shared by every API family.

``request.auth`` is the ApiKey (with its account loaded); ``request.user`` is None.
"""

import time

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from rest_framework import authentication, exceptions, permissions

from accounts.models import ApiKey
from accounts.services import key_hash
from api.guard import auth_failure_record
from common import logs


def _bearer(request) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


_cache: dict[str, tuple[float, ApiKey | None]] = {}


def _lookup(digest: str) -> ApiKey | None:
    """The key and its account, cached per process for HERALD_API_KEY_CACHE_SECONDS (so a
    revocation or an account change takes at most that long to apply everywhere)."""
    ttl = settings.HERALD_API_KEY_CACHE_SECONDS
    now = time.monotonic()
    hit = _cache.get(digest)
    if hit is not None and hit[0] > now:
        return hit[1]
    key = ApiKey.objects.select_related("account").filter(
        key_hash=digest, revoked_at__isnull=True).first()
    if ttl > 0 and key is not None:
        if len(_cache) > 10_000:
            _cache.clear()
        _cache[digest] = (now + ttl, key)
    return key


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer <live_…|test_…>``. A failure is counted by the brute-force guard
    (``api.guard``), which answers 429 instead of 401 once the key or the client address
    failed too often; a key that authenticates is never refused there."""

    def authenticate(self, request):
        try:
            return self._authenticate(request)
        except exceptions.AuthenticationFailed:
            if (refusal := auth_failure_record(request)) is not None:
                raise refusal from None
            raise

    def _authenticate(self, request):
        raw = _bearer(request)
        if raw is None:
            if "HTTP_AUTHORIZATION" in request.META:
                raise exceptions.AuthenticationFailed(
                    "Authorization must be 'Bearer <api key>'."
                )
            return None
        key = _lookup(key_hash(raw))
        if key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        self.check_key(request, key)
        # The request's later log lines say whose it is (common.logs; cleared with the request).
        logs.bind(account=str(key.account_id), mode=key.mode)
        return (None, key)

    def check_key(self, request, key: ApiKey) -> None:
        """Hook for families that need more than the bearer key."""

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="herald"'


class SubscriptionKeyAuthentication(ApiKeyAuthentication):
    """The check-in & comms family also needs ``Ocp-Apim-Subscription-Key`` of the same account."""

    def check_key(self, request, key: ApiKey) -> None:
        raw = request.META.get("HTTP_OCP_APIM_SUBSCRIPTION_KEY", "").strip()
        if not raw:
            raise exceptions.AuthenticationFailed("Missing Ocp-Apim-Subscription-Key header.")
        if key.account.subscription_key_hash != key_hash(raw):
            raise exceptions.AuthenticationFailed("Invalid Ocp-Apim-Subscription-Key.")


class HasApiKey(permissions.BasePermission):
    message = "Authentication with 'Authorization: Bearer <api key>' is required."

    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, ApiKey)


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """The OpenAPI security scheme of ``ApiKeyAuthentication`` (drf-spectacular)."""

    target_class = ApiKeyAuthentication
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(header_name="Authorization",
                                                   token_prefix="Bearer")


class SubscriptionKeyScheme(OpenApiAuthenticationExtension):
    """The check-in & comms family: the bearer key and the subscription key, together."""

    target_class = SubscriptionKeyAuthentication
    name = ["checkinApiKey", "subscriptionKey"]  # a name is one class's: not "apiKey"
    priority = 1  # over ApiKeyScheme, which its base class would match

    def get_security_definition(self, auto_schema):
        return [build_bearer_security_scheme_object(header_name="Authorization",
                                                    token_prefix="Bearer"),
                {"type": "apiKey", "in": "header", "name": "Ocp-Apim-Subscription-Key"}]
