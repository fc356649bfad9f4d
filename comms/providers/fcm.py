"""Firebase Cloud Messaging (HTTP v1) with a Google service account.

``google-auth`` signs the JWT grant and exchanges it at the key file's ``token_uri`` for an
OAuth2 access token; the send itself is one ``requests`` POST. Access tokens are cached per
service account for the whole process (providers are built per send), until google-auth
considers them about to expire.

The key file is the account's: its ``token_uri`` must be one of Google's token endpoints
(any http(s) URL only with ``HERALD_PROVIDER_API_BASE_OVERRIDE``, for tests' fakes), its
other URLs Google's, checked when the integration is saved and again when it is used; only
the fields google-auth needs reach it, and every request (token and send) goes through the
SSRF guard to the vetted address (``common.http.pinned_session``). What Google answers
reaches the tenant only as ``vendor_reason``'s short code.
"""

import functools
import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
from google.auth import exceptions as google_errors
from google.auth.transport.requests import Request as GoogleRequest
from google.oauth2 import service_account

from common import http, ssrf
from comms.providers.base import (
    Adapter,
    ChannelMessage,
    ProviderConfigurationError,
    ProviderTransientError,
    SendResult,
)
from comms.providers.vendor_http import (
    allow_private,
    json_object,
    pinned_session,
    vendor_reason,
)

DEFAULT_API_BASE = "https://fcm.googleapis.com"
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
_REQUIRED_KEYS = ("client_email", "private_key", "token_uri")
# The token endpoints Google's key files name (today's, and older files').
GOOGLE_TOKEN_URIS = frozenset({
    "https://oauth2.googleapis.com/token", "https://accounts.google.com/o/oauth2/token",
    "https://www.googleapis.com/oauth2/v4/token",
})
# What google-auth reads of a key file: nothing else (other URLs, universe_domain) reaches it.
_KEYS_USED = ("type", "project_id", "private_key_id", "private_key", "client_email",
              "client_id", "token_uri")
_PROJECT_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.:-]{0,99}")
# RFC 6749's error codes: the only part of a token endpoint's answer a tenant sees.
OAUTH_ERRORS = frozenset({"invalid_request", "invalid_client", "invalid_grant",
                          "unauthorized_client", "unsupported_grant_type", "invalid_scope",
                          "access_denied", "server_error", "temporarily_unavailable"})


class FcmPushProvider(Adapter):
    name = "fcm"
    vendor = "FCM"
    channel = "push"
    recipient_codes = frozenset({"UNREGISTERED", "SENDER_ID_MISMATCH"})  # the token is dead
    recipient_text = "FCM token rejected: {detail}"
    configuration_codes = frozenset({"THIRD_PARTY_AUTH_ERROR"})
    configuration_text = "FCM refused the service account: {detail}"
    rate_limit_text = "{detail}"
    config_fields = {
        "api_base": f"FCM API base URL (default {DEFAULT_API_BASE}).",
        "project_id": "Firebase project id (default: the service account's project_id).",
    }
    credential_fields = {
        "service_account_json": "The service account's JSON key file, pasted whole.",
    }

    def __init__(self, config: dict, credentials: dict, timeout: float) -> None:
        key_text = credentials.get("service_account_json") or ""
        info = _service_account_info(key_text)
        project_id = str(config.get("project_id") or info.get("project_id") or "")
        if not _PROJECT_ID_RE.fullmatch(project_id):
            raise ProviderConfigurationError("FCM needs a project_id (config or key file).")
        api_base = (config.get("api_base") or DEFAULT_API_BASE).rstrip("/")
        self.url = f"{api_base}/v1/projects/{project_id}/messages:send"
        self.timeout = timeout
        self.session = pinned_session()
        self.tokens = _token_source(key_text, allow_private())

    @classmethod
    def settings_check(cls, config: dict, credentials: dict | None) -> None:
        """At save: the key file (when given) parses and names only Google's URLs; a
        project_id is one (it goes into the URL's path)."""
        if config.get("project_id") and not _PROJECT_ID_RE.fullmatch(str(config["project_id"])):
            raise ProviderConfigurationError("FCM project_id is not a Firebase project id.")
        if credentials and credentials.get("service_account_json"):
            _service_account_info(credentials["service_account_json"])

    def send(self, message: ChannelMessage) -> SendResult:
        body = {"message": fcm_message(message)}
        response = self._post(body, self._token(force=False))
        if response.status_code == 401:  # revoked or expired early: one fresh token
            response = self._post(body, self._token(force=True))
        if response.status_code == 200:
            name = json_object(response.content).get("name")
            if not name:
                raise ProviderTransientError("FCM answered without a message name.")
            return SendResult(provider_message_id=name)
        raise self._error(response)

    def _post(self, body: dict, token: str) -> requests.Response:
        try:
            return self.session.post(self.url, json=body, timeout=self.timeout,
                                     headers={"Authorization": f"Bearer {token}"})
        except requests.RequestException as exc:
            raise self.network_error(exc) from exc

    def _error(self, response: requests.Response) -> Exception:
        """FCM's ``details[].errorCode`` (else its status name) is the code; an
        INVALID_ARGUMENT about the token is a dead address too."""
        error = json_object(response.content).get("error")
        error = error if isinstance(error, dict) else {}
        return self.answer_error(
            response.status_code, code=_fcm_error_code(error) or error.get("status"),
            body=response.content[:4000], headers=response.headers,
            recipient=response.status_code == 400 and _about_token(error))

    def _token(self, *, force: bool) -> str:
        request = functools.partial(GoogleRequest(self.session), timeout=self.timeout)
        return self.tokens.access_token(request, force=force)


def fcm_message(message: ChannelMessage) -> dict[str, Any]:
    """FCM wants ``data`` as string values: anything else is sent as its JSON."""
    body: dict[str, Any] = {
        "token": message.to,
        "notification": {"title": message.title, "body": message.text},
    }
    data = message.options.get("data")
    if data:
        body["data"] = {str(key): value if isinstance(value, str) else json.dumps(value)
                        for key, value in data.items()}
    return body


@dataclass
class _TokenSource:
    """One service account's credentials; the lock keeps concurrent sends to one refresh."""

    credentials: service_account.Credentials
    lock: threading.Lock = field(default_factory=threading.Lock)

    def access_token(self, request: Any, *, force: bool) -> str:
        with self.lock:
            if force or not self.credentials.valid:
                _refresh(self.credentials, request)
            return str(self.credentials.token)


def _refresh(credentials: service_account.Credentials, request: Any) -> None:
    # Raised outside the ``except`` blocks: the chained google-auth error carries the
    # token endpoint's whole answer.
    try:
        credentials.refresh(request)
        return
    except google_errors.RefreshError as exc:
        data = exc.args[1] if len(exc.args) > 1 else None
        code = data.get("error") if isinstance(data, dict) else None
        reason = vendor_reason("OAuth", None, code if isinstance(code, str) and (
            code in OAUTH_ERRORS) else "", body=exc.args)
        failure: Exception = (
            ProviderTransientError(f"Google token endpoint failed ({reason}).") if exc.retryable
            else ProviderConfigurationError(
                f"Google rejected the FCM service account ({reason})."))
    except google_errors.TransportError as exc:
        cause = exc.__cause__
        failure = (ProviderConfigurationError(f"FCM token_uri refused: {cause}")
                   if isinstance(cause, http.RefusedRequest)
                   else ProviderTransientError("Google token endpoint unreachable."))
    except (ValueError, KeyError, TypeError):  # a 200 that is not a token answer
        failure = ProviderTransientError("Google token endpoint answered unreadably.")
    raise failure


@functools.lru_cache(maxsize=128)
def _token_source(key_text: str, private_allowed: bool) -> _TokenSource:
    """Keyed by the key file's text, so a rotated key gets its own token (and by the
    platform's switch, so turning it off takes effect at once)."""
    info = _service_account_info(key_text)
    try:
        credentials = service_account.Credentials.from_service_account_info(
            {key: info[key] for key in _KEYS_USED if key in info}, scopes=[SCOPE])
    except (ValueError, TypeError) as exc:  # the message could quote the key: not shown
        raise ProviderConfigurationError(
            "FCM service account private_key is not a valid PEM key.") from exc
    return _TokenSource(credentials)


def _service_account_info(key_text: str) -> dict[str, Any]:
    try:
        info = json.loads(key_text)
    except ValueError:
        info = None
    if not isinstance(info, dict):
        raise ProviderConfigurationError("FCM service_account_json is not a JSON key file.")
    missing = [key for key in _REQUIRED_KEYS if not info.get(key)]
    if missing:
        raise ProviderConfigurationError(
            f"FCM service_account_json lacks {', '.join(missing)}.")
    for key, value in info.items():
        if key.endswith(("_uri", "_url")):
            _google_url_check(key, value)
    return info


def _google_url_check(key: str, url: Any) -> None:
    """Only Google's endpoints, unless the platform lets providers reach other hosts
    (tests' fakes); even then an http(s) URL the SSRF guard can parse."""
    if allow_private():
        try:
            ssrf.url_parse(url)
        except ssrf.UnsafeUrl as exc:
            raise ProviderConfigurationError(f"FCM service_account_json {key}: {exc}") from None
        return
    if key == "token_uri":
        if url not in GOOGLE_TOKEN_URIS:
            raise ProviderConfigurationError(
                "FCM service_account_json token_uri must be Google's token endpoint "
                "(https://oauth2.googleapis.com/token).")
        return
    host = urlsplit(url).hostname if isinstance(url, str) else None
    if not (isinstance(url, str) and url.startswith("https://") and host and (
            host == "accounts.google.com" or host.endswith(".googleapis.com"))):
        raise ProviderConfigurationError(
            f"FCM service_account_json {key} must be an https URL of Google's.")


def _fcm_error_code(error: dict) -> str:
    for item in error.get("details") or []:
        if isinstance(item, dict) and item.get("errorCode"):
            return str(item["errorCode"])
    return ""


def _about_token(error: dict) -> bool:
    """INVALID_ARGUMENT names its field in a BadRequest violation, or says so in words."""
    for item in error.get("details") or []:
        for violation in (item.get("fieldViolations") or []) if isinstance(item, dict) else []:
            if isinstance(violation, dict) and violation.get("field") == "message.token":
                return True
    return "registration token" in str(error.get("message", "")).lower()

