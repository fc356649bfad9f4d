"""Inbound provider callbacks on one base view, as django-anymail's webhook views are: a
provider's view verifies the request, reads it, stores it raw and answers at once; its
``parse_events`` later turns the stored body into normalized events, in a task
(``comms.callbacks.services``). Each provider's view class is registered as its
``callbacks`` capability in the one provider registry (``comms.providers.registry``): that is
how a stored batch finds its parser."""

import json
from typing import Any, ClassVar

from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from common import jobs
from comms.models import CallbackBatch
from comms.providers.base import ProviderEvent


class CallbackRefused(Exception):
    """Why a callback request is refused: its HTTP status and a short message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def callback_error(status: int, message: str) -> JsonResponse:
    """How every provider callback endpoint refuses a request: ``{"error": message}``."""
    return JsonResponse({"error": message}, status=status)


def callback_batch_store(*, provider: str, body: str) -> CallbackBatch:
    """Keep the request as received and enqueue its processing once it is committed."""
    with transaction.atomic():
        batch = CallbackBatch.objects.create(provider=provider, body=body)
        transaction.on_commit(
            lambda: jobs.publish("comms.process_callback_batch", batch.id), robust=True)
    return batch


@method_decorator(csrf_exempt, name="dispatch")
class CallbackView(View):
    """POST only: decode → ``verify`` → ``read`` → ``accept`` (store, answer); a
    ``CallbackRefused`` anywhere is the answer. Subclasses name their ``provider`` and give
    ``verify``, ``read`` and ``parse_events``."""

    provider: ClassVar[str] = ""
    http_method_names = ["post"]
    undecodable = "body is not UTF-8"  # the answer to a body that is not UTF-8

    def post(self, request: HttpRequest) -> HttpResponse:
        try:
            try:
                body = request.body.decode("utf-8")
            except UnicodeDecodeError:
                raise CallbackRefused(400, self.undecodable) from None
            self.verify(request, body)
            return self.accept(body, self.read(body))
        except CallbackRefused as exc:
            return callback_error(exc.status, exc.message)

    def verify(self, request: HttpRequest, body: str) -> None:
        """Raise ``CallbackRefused`` unless the provider sent this request."""
        raise NotImplementedError

    @staticmethod
    def unsubscribes_everything(event: ProviderEvent) -> bool:
        """Whether an ``unsubscribed`` event opts the address out of every topic (the
        provider's global list), not only the topic of the email it came from
        (``comms.lifecycle``)."""
        return False

    def read(self, body: str) -> Any:
        """The request's payload; ``CallbackRefused`` if it is not what the provider sends."""
        try:
            return json.loads(body)
        except ValueError:
            raise CallbackRefused(400, "body is not JSON") from None

    def accept(self, body: str, payload: Any) -> HttpResponse:
        """Store the body for ``parse_events`` and answer at once."""
        batch = callback_batch_store(provider=self.provider, body=body)
        return JsonResponse({"received": self.count(payload), "batch": batch.id})

    def count(self, payload: Any) -> int:
        return 1

    @staticmethod
    def parse_events(body: str) -> list[ProviderEvent]:
        """A stored body as normalized events; ``ValueError`` if it cannot be read."""
        raise NotImplementedError
