"""What the AWS adapters share (SES email, SNS SMS, SES domain identities): the one place a
boto3 client is made, how a botocore ``ClientError`` reads as an HTTP answer, and what every
other botocore failure of a send means."""

import functools
from collections.abc import Callable
from typing import Any

import boto3
import urllib3
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.parsers import ResponseParserError

from common import http
from comms.providers.base import (
    Adapter,
    ProviderConfigurationError,
    ProviderPermanentError,
    ProviderTransientError,
)
from comms.providers.vendor_http import allow_private, vendor_reason


def client(service: str, *, region: str, endpoint_url: str = "", timeout: float,
           attempts: int = 1, access_key_id: str = "", secret_access_key: str = "",
           pinned: bool = False) -> Any:
    """A new boto3 client of ``service``: its own session (sessions are not thread-safe),
    ``attempts`` calls at most (1: the delivery pipeline owns retries and their backoff),
    the account's keys if given (else boto3's credential chain), and with ``pinned`` every
    request through the SSRF guard (an account-chosen ``endpoint_url``)."""
    keys = ({"aws_access_key_id": access_key_id, "aws_secret_access_key": secret_access_key}
            if access_key_id else {})
    made = boto3.session.Session().client(
        service, region_name=region, endpoint_url=endpoint_url or None, **keys,
        # In a Config "max_attempts" counts retries only; "total_max_attempts" counts all.
        config=Config(connect_timeout=timeout, read_timeout=timeout,
                      retries={"mode": "standard", "total_max_attempts": attempts}))
    return _pinned(made, timeout) if pinned else made


@functools.lru_cache(maxsize=64)
def shared_client(service: str, *, region: str, endpoint_url: str = "", timeout: float,
                  attempts: int = 1) -> Any:
    """The process's client for a platform configuration (boto3 clients are thread-safe and
    costly to make): Herald's own credentials, never an account's."""
    return client(service, region=region, endpoint_url=endpoint_url, timeout=timeout,
                  attempts=attempts)


def answer(exc: Any) -> tuple[int, str, str, dict[str, Any]]:
    """A botocore ``ClientError`` as an HTTP answer: status, error code, the vendor's
    message (for the server log only) and headers."""
    error = exc.response.get("Error", {})
    metadata = exc.response.get("ResponseMetadata", {})
    return (int(metadata.get("HTTPStatusCode") or 0), str(error.get("Code", "")),
            str(error.get("Message", "")).strip(), metadata.get("HTTPHeaders") or {})


def call(adapter: Adapter, request: Callable[[], Any], *, timeout: float,
         answered: Callable[[ClientError], Exception]) -> Any:
    """``request()``'s answer; an AWS error answer as ``answered`` reads it; everything else
    botocore can raise as the adapter's error: no credentials or region → configuration, no
    answer → ``network_error``, an unreadable answer → transient (its text quotes the
    answer: never shown), a parameter botocore itself refuses → permanent."""
    vendor = adapter.vendor
    try:
        return request()
    except ClientError as exc:
        raise answered(exc) from exc
    except (NoCredentialsError, PartialCredentialsError, NoRegionError) as exc:
        raise ProviderConfigurationError(f"{vendor} is not configured: {exc}") from exc
    except (http.Refused, BotoConnectionError, HTTPClientError, urllib3.exceptions.HTTPError,
            OSError) as exc:
        raise adapter.network_error(exc, timeout=timeout) from exc
    except ResponseParserError as exc:
        raise ProviderTransientError(
            f"{vendor_reason(vendor, body=str(exc))} answered unreadably.") from None
    except BotoCoreError as exc:
        raise ProviderPermanentError(f"{vendor} refused the request: {exc}"[:300]) from exc


class _Raw:
    """What botocore reads an answer's body from."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **kwargs: Any) -> Any:
        yield self.data


def _pinned(made: Any, timeout: float) -> Any:
    """``made`` sending every request through the SSRF guard to the vetted address
    (botocore's ``before-send`` hook, which lets a handler answer instead of its own HTTP
    session). Raises ``common.http.Refused``."""

    def send(request: Any, **kwargs: Any) -> Any:
        body = request.body
        body = body.encode() if isinstance(body, str) else (
            body.read() if hasattr(body, "read") else body)
        answered = http.request(request.method, request.url, body=body,
                                headers=dict(request.headers.items()), timeout=timeout,
                                allow_private=allow_private())
        return AWSResponse(request.url, answered.status, dict(answered.headers.items()),
                           _Raw(answered.data))

    made.meta.events.register_first("before-send.*.*", send)
    return made
