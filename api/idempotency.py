"""Idempotency keys on every POST of every API family: ``X-Idempotency-Key`` (spec 004) or
the standard ``Idempotency-Key``.

Scoped per account and key mode. The first request with a key claims it by inserting an
``IdempotentRequest`` (the unique constraint decides races: exactly one runs); its final
response is stored and, for HERALD_IDEMPOTENCY_TTL_SECONDS, replayed with
``Idempotent-Replayed: true`` to any request with the same key, method, path and body. The
same key on another request is refused; while the first still runs, a retry gets 409 with
``Retry-After: 1``. A 5xx, a crash, 401/403/409/429 release the key so a retry can run.

Stored responses are encrypted (``common.crypto``, Fernet): some carry secrets, such as the
``whsec_`` signing secret of ``POST /v1/webhooks`` and of rotate-secret, and none is kept in
clear in the table. A test key's requests and a live key's never share a key: the scope is
(account, mode, key).

Expired rows are deleted on the request path: a conflicting expired row at once, and all
expired rows at most once a minute per process (``_sweep``).
"""

import hashlib
import time
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpResponse, HttpResponseBase
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from accounts.models import ApiKey, IdempotentRequest
from api.families import Family
from common import crypto, metrics
from common.errors import HeraldError

HEADERS = (("HTTP_X_IDEMPOTENCY_KEY", "X-Idempotency-Key"),
           ("HTTP_IDEMPOTENCY_KEY", "Idempotency-Key"))
SWEEP_EVERY_SECONDS = 60.0
SEALED = b"fernet:"  # prefix of an encrypted stored body (a JSON body never starts with it)
_last_sweep = 0.0


class Replay(Exception):
    """Raised from the view's ``initial``: the stored response answers instead of the view."""

    def __init__(self, response: HttpResponse) -> None:
        super().__init__("idempotent replay")
        self.response = response


class InProgress(HeraldError):
    headers = {"Retry-After": "1"}

    def __init__(self) -> None:
        super().__init__("idempotency_request_in_progress",
                         "A request with this idempotency key is still being processed; "
                         "retry in a moment.", status=409)


def _reused(family: Family) -> HeraldError:
    # Spec 000's family already answers a reused key with 409 idempotency_key_reused (its
    # 422 is reserved for the "previous send failed" body); the other families use 422.
    if family.key_reused_status == 409:
        return HeraldError("idempotency_key_reused",
                           "This Idempotency-Key was used for a different request.", status=409)
    return HeraldError("IDEMPOTENCY_KEY_REUSED",
                       "This idempotency key was used for a different request.",
                       status=family.key_reused_status)


def idempotency_key(request) -> str | None:
    """The request's key (either header), or None; 400 when malformed or the two differ."""
    found = {name: request.META[meta] for meta, name in HEADERS if meta in request.META}
    if not found:
        return None
    if len(set(found.values())) > 1:
        raise ValidationError({"Idempotency-Key": ["Differs from X-Idempotency-Key."]})
    name, key = next(iter(found.items()))
    if not (1 <= len(key) <= 255) or not key.isprintable():
        raise ValidationError({name: ["1 to 255 printable characters."]})
    return key


def fingerprint(request) -> str:
    digest = hashlib.sha256(f"{request.method}\n{request.get_full_path()}\n".encode())
    digest.update(request.body)
    return digest.hexdigest()


def idempotency_claim(request, *, family: Family) -> IdempotentRequest | None:
    """Claim the request's key for this request (the caller then runs the view and calls
    ``idempotency_finish``); None without a key or an API key. Raises ``Replay`` with the
    stored response, ``InProgress``, or ``family``'s key-reused error."""
    key = idempotency_key(request)
    if key is None or not isinstance(request.auth, ApiKey):
        return None
    scope = {"account_id": request.auth.account_id, "mode": request.auth.mode, "key": key}
    digest = fingerprint(request)
    _sweep()
    for _ in range(3):
        try:
            with transaction.atomic():
                return IdempotentRequest.objects.create(**scope, fingerprint=digest)
        except IntegrityError:
            pass
        first = IdempotentRequest.objects.filter(**scope).first()
        if first is None or _abandoned(first):
            continue  # released or expired meanwhile: claim again
        if first.fingerprint != digest:
            raise _reused(family)
        if first.status is None:
            raise InProgress()
        metrics.idempotent_replay()
        raise Replay(_replay(first))
    raise InProgress()


def idempotency_finish(claim: IdempotentRequest | None, response: HttpResponseBase) -> None:
    """Store the claimed request's final response, or release its key so a retry runs."""
    if claim is None:
        return
    status = response.status_code
    # Only a request that did something is replayed. A refusal changed nothing (bad input,
    # an unknown event, a missing integration…) and may pass once the caller fixed things,
    # so its key is released and a retry runs again.
    if 200 <= status < 300 and not response.streaming:
        if callable(getattr(response, "render", None)):
            response.render()
        IdempotentRequest.objects.filter(pk=claim.pk).update(
            status=status, content_type=response.get("Content-Type", ""),
            body=_seal(response.content))
    else:
        idempotency_release(claim)


def idempotency_release(claim: IdempotentRequest | None) -> None:
    if claim is not None:
        IdempotentRequest.objects.filter(pk=claim.pk).delete()


def _seal(body: bytes) -> bytes:
    return SEALED + crypto.encrypt_bytes(body)


def _unseal(stored: bytes) -> bytes:
    """The stored body in clear; a row stored before bodies were encrypted is read as is."""
    if not stored.startswith(SEALED):
        return stored
    try:
        return crypto.decrypt_bytes(stored[len(SEALED):])
    except crypto.InvalidToken:
        # The encryption key changed since: running the request again could send twice.
        raise HeraldError("idempotency_response_unreadable",
                          "The stored response of this idempotency key can no longer be read "
                          "(the encryption key changed); use a new key if the request must "
                          "run again.", status=409) from None


def _replay(row: IdempotentRequest) -> HttpResponse:
    response = HttpResponse(_unseal(bytes(row.body)), status=row.status,
                            content_type=row.content_type or None)
    response["Idempotent-Replayed"] = "true"
    return response


def _abandoned(row: IdempotentRequest) -> bool:
    """Delete the row if expired, or if its request never finished (a killed process)."""
    age = (timezone.now() - row.created_at).total_seconds()
    limit = (settings.HERALD_IDEMPOTENCY_TTL_SECONDS if row.status is not None
             else settings.HERALD_IDEMPOTENCY_LEASE_SECONDS)
    if age < limit:
        return False
    IdempotentRequest.objects.filter(pk=row.pk, created_at=row.created_at).delete()
    return True


def _sweep() -> None:
    global _last_sweep
    now = time.monotonic()
    if now - _last_sweep < SWEEP_EVERY_SECONDS:
        return
    _last_sweep = now
    cutoff = timezone.now() - timedelta(seconds=settings.HERALD_IDEMPOTENCY_TTL_SECONDS)
    IdempotentRequest.objects.filter(created_at__lt=cutoff).delete()
