"""Inbound provider callbacks: verify, store raw, answer at once (processing is a task)."""

import json
import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from comms.callbacks import sendgrid
from comms.callbacks.services import callback_batch_store, callback_error

log = logging.getLogger(__name__)


@csrf_exempt
@require_POST
def sendgrid_events(request: HttpRequest) -> HttpResponse:
    """SendGrid's signed Event Webhook. Forged, missing or stale signatures: 403."""
    try:
        body = request.body.decode("utf-8")
    except UnicodeDecodeError:
        return callback_error(400, "body is not UTF-8")
    if not sendgrid.signature_valid(
        public_key=settings.SENDGRID_WEBHOOK_PUBLIC_KEY, body=body,
        signature=request.META.get(sendgrid.SIGNATURE_HEADER, ""),
        timestamp=request.META.get(sendgrid.TIMESTAMP_HEADER, ""),
        max_age_seconds=settings.SENDGRID_WEBHOOK_MAX_AGE_SECONDS,
    ):
        log.warning("SendGrid callback with a missing, forged or stale signature refused")
        return callback_error(403, "invalid signature")
    try:
        payload = json.loads(body)
    except ValueError:
        return callback_error(400, "body is not JSON")
    if not isinstance(payload, list):
        return callback_error(400, "expected a JSON array of events")
    batch = callback_batch_store(provider="sendgrid", body=body)
    return JsonResponse({"received": len(payload), "batch": batch.id})
