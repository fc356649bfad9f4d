"""Firebase Cloud Messaging (HTTP v1) with a Google service account.

``google-auth`` signs the JWT grant and exchanges it at the key file's ``token_uri`` for an
OAuth2 access token; the send itself is one ``requests`` POST. Access tokens are cached per
service account for the whole process (providers are built per send), until google-auth
considers them about to expire.
"""

import functools
import json
import threading
from dataclasses import dataclass, field
from typing import Any

import requests
from google.auth import exceptions as google_errors
from google.auth.transport.requests import Request as GoogleRequest
from google.oauth2 import service_account

from comms.providers.base import (
    ChannelMessage,
    ProviderConfigurationError,
    ProviderInvalidRecipient,
    ProviderPermanentError,
    ProviderTransientError,
    SendResult,
)
from comms.providers.vendor_http import retry_after

DEFAULT_API_BASE = "https://fcm.googleapis.com"
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
_REQUIRED_KEYS = ("client_email", "private_key", "token_uri")


class FcmPushProvider:
    name = "fcm"
    channel = "push"
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
        project_id = config.get("project_id") or info.get("project_id")
        if not project_id:
            raise ProviderConfigurationError("FCM needs a project_id (config or key file).")
        api_base = (config.get("api_base") or DEFAULT_API_BASE).rstrip("/")
        self.url = f"{api_base}/v1/projects/{project_id}/messages:send"
        self.timeout = timeout
        self.session = requests.Session()
        self.tokens = _token_source(key_text)

    def send(self, message: ChannelMessage) -> SendResult:
        body = {"message": fcm_message(message)}
        response = self._post(body, self._token(force=False))
        if response.status_code == 401:  # revoked or expired early: one fresh token
            response = self._post(body, self._token(force=True))
        if response.status_code == 200:
            name = _json(response).get("name")
            if not name:
                raise ProviderTransientError("FCM answered without a message name.")
            return SendResult(provider_message_id=name)
        raise _classify(response)

    def _post(self, body: dict, token: str) -> requests.Response:
        try:
            return self.session.post(self.url, json=body, timeout=self.timeout,
                                     headers={"Authorization": f"Bearer {token}"})
        except requests.Timeout as exc:
            raise ProviderTransientError("FCM timed out.") from exc
        except requests.RequestException as exc:
            raise ProviderTransientError(f"FCM unreachable: {type(exc).__name__}") from exc

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
    try:
        credentials.refresh(request)
    except google_errors.RefreshError as exc:
        reason = str(exc.args[0]) if exc.args else "refused"
        if exc.retryable:
            raise ProviderTransientError(f"Google token endpoint failed: {reason}"[:300]) from exc
        raise ProviderConfigurationError(
            f"Google rejected the FCM service account: {reason}"[:300]) from exc
    except google_errors.TransportError as exc:
        raise ProviderTransientError("Google token endpoint unreachable.") from exc


@functools.lru_cache(maxsize=128)
def _token_source(key_text: str) -> _TokenSource:
    """Keyed by the key file's text, so a rotated key gets its own token."""
    info = _service_account_info(key_text)
    try:
        credentials = service_account.Credentials.from_service_account_info(
            info, scopes=[SCOPE])
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
    return info


# FCM's error codes (details[].errorCode) that mean the token is dead.
_DEAD_TOKEN_CODES = frozenset({"UNREGISTERED", "SENDER_ID_MISMATCH"})


def _classify(response: requests.Response) -> Exception:
    status = response.status_code
    error = _json(response).get("error")
    error = error if isinstance(error, dict) else {}
    code = _fcm_error_code(error)
    detail = f"{code or error.get('status') or 'HTTP'} {status}: " \
             f"{error.get('message') or response.reason or 'error'}"[:300]
    if code in _DEAD_TOKEN_CODES or (status == 400 and _about_token(error)):
        return ProviderInvalidRecipient(f"FCM token rejected: {detail}")
    if status == 429 or status >= 500:
        return ProviderTransientError(
            f"FCM {detail}", retry_after=retry_after(response.headers.get("Retry-After")))
    if status in (401, 403) or code == "THIRD_PARTY_AUTH_ERROR":
        return ProviderConfigurationError(f"FCM refused the service account: {detail}")
    return ProviderPermanentError(f"FCM {detail}")


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


def _json(response: requests.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
