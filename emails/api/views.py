"""Spec 003: ``POST/GET /v1/Email/`` and the brands they are sent from (``/v1/Brand/``)."""

import uuid
from typing import Any

from django.http import QueryDict
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework.response import Response

from api.families import EMAILS
from api.views import HeraldAPIView, get_owned
from common.errors import HeraldError, NotFound
from comms.models import Delivery
from comms.scheduling import delivery_cancel
from emails import selectors, services
from emails.api.serializers import (
    BrandEnvelope,
    BrandIn,
    BrandsEnvelope,
    BrandUpdateIn,
    EmailBatchDoc,
    EmailBatchIn,
    EmailEnvelope,
    EmailSendOut,
    ErrorOut,
    HistoryOut,
    HistoryQuery,
    brand_out,
    email_out,
    result_out,
)
from emails.cursor import cursor_decode, cursor_encode
from emails.selectors import HistoryFilters, Position

TAGS = ["email history (spec 003)"]
# The statuses every operation shares (401, 429, 400/404/413/415 where there is input to
# refuse, the idempotency keys' on POST) are documented by api.schema for every family.
SEND_EXAMPLES = [
    OpenApiExample("A token email", request_only=True, value={"Messages": [{
        "To": "example@example.com", "Type": "token",
        "BrandId": "5d3c2b1a-0f9e-4d8c-b7a6-958473625140", "Token": "abcde",
        "NumPhotos": 10}]}),
    OpenApiExample("Sent", response_only=True, status_codes=["200"], value={"Results": [
        {"Status": 200, "MessageId": "0e1d2c3b-4a59-4687-b7c6-d5e4f3a2b1c0"}]}),
]
NAME_TAKEN = {409: OpenApiResponse(ErrorOut, description="Another brand has this name")}


class V003View(HeraldAPIView):
    family = EMAILS


class Emails(V003View):
    @extend_schema(operation_id="email_send", request=EmailBatchDoc,
                   responses={200: EmailSendOut, 403: OpenApiResponse(
                       description="The account may not send yet (an administrator verifies "
                                   "it).")}, examples=SEND_EXAMPLES, tags=TAGS,
                   summary="Send a batch of 1 to 1,000 emails; one result per message, in order")
    def post(self, request):
        data = EmailBatchIn(data=request.data)
        data.is_valid(raise_exception=True)
        results = services.emails_send(account=self.get_account(), mode=request.auth.mode,
                                       messages=data.validated_data["Messages"])
        return Response({"Results": [result_out(r) for r in results]})

    @extend_schema(operation_id="email_history", parameters=[HistoryQuery],
                   responses={200: HistoryOut}, tags=TAGS,
                   summary="The email history, newest first, with each email's lifecycle")
    def get(self, request):
        account = self.get_account()
        filters, start, limit = _history_query(request.query_params, account.id)
        page = selectors.email_history(account=account, mode=request.auth.mode,
                                       filters=filters, start=start, limit=limit)
        after = page.next and cursor_encode(account_id=account.id, filters=filters,
                                            position=page.next)
        return Response({"Emails": [email_out(e) for e in page.emails], "Next": after or None})


class EmailDetail(V003View):
    @extend_schema(operation_id="email_cancel", request=None, tags=TAGS,
                   responses={200: EmailEnvelope,
                              404: OpenApiResponse(ErrorOut, description="No message with "
                                                   "this MessageId of the account's, in this "
                                                   "key's mode."),
                              409: OpenApiResponse(ErrorOut, description="Sending, sent or "
                                                   "already final: it can no longer be "
                                                   "cancelled (the Error says which).")},
                   summary="Cancel a message not sent yet (beyond the spec): its State "
                           "becomes cancelled and it is never sent")
    def delete(self, request, MessageId):
        account, mode = self.get_account(), request.auth.mode
        # Spec 003's own messages (those with an Email row), in this key's mode.
        rows = Delivery.objects.filter(account=account, mode=mode, email__isnull=False)
        found = get_owned(rows, MessageId, "message")
        delivery_cancel(rows, found.id)
        email = selectors.email_one(account=account, mode=mode, message_id=found.id)
        return Response({"Email": email_out(email)})


def _history_query(params: QueryDict, account_id: Any) -> tuple[HistoryFilters,
                                                                 Position | None, int]:
    """Filters, start and page size. ``Next`` carries its query's filters: given along with
    it, they must be the same."""
    known = set(HistoryQuery().fields)
    unknown = sorted(set(params) - known)
    if unknown:
        raise HeraldError("unknown_parameter", f"Unknown query parameter(s): "
                          f"{', '.join(unknown)}. Known: {', '.join(sorted(known))}.")
    repeated = sorted(name for name in params if len(params.getlist(name)) > 1)
    if repeated:
        raise HeraldError("repeated_parameter", f"Given more than once: {', '.join(repeated)}.")
    query = HistoryQuery(data=params.dict())
    query.is_valid(raise_exception=True)
    values = query.validated_data
    if values.get("Email") is not None:
        filters = HistoryFilters(email=values["Email"])
    else:
        filters = HistoryFilters(brand_id=values.get("BrandId"), state=values.get("State"),
                                 after=values.get("After"))
    if "Next" not in values:
        return filters, None, values["Limit"]
    carried, start = cursor_decode(account_id=account_id, token=values["Next"])
    if filters != HistoryFilters() and filters != carried:
        raise HeraldError("cursor_filters", "Next belongs to a query with other filters: "
                          "pass it with the same filters, or alone.")
    return carried, start, values["Limit"]


class Brands(V003View):
    configuration = True  # test keys read, never change

    @extend_schema(operation_id="brand_create", request=BrandIn,
                   responses={201: BrandEnvelope, **NAME_TAKEN}, tags=TAGS,
                   summary="Create a brand (sender identity and one template per email Type)")
    def post(self, request):
        data = BrandIn(data=request.data)
        data.is_valid(raise_exception=True)
        brand = services.brand_create(account=self.get_account(), **data.to_brand_fields())
        return Response({"Brand": brand_out(brand)}, status=201)

    @extend_schema(operation_id="brand_list",
                   responses={200: BrandsEnvelope}, tags=TAGS,
                   summary="The account's brands")
    def get(self, request):
        brands = self.get_account().brands.order_by("name", "id")
        return Response({"Brands": [brand_out(b) for b in brands]})


class BrandDetail(V003View):
    configuration = True  # test keys read, never change

    def get_brand(self, brand_id: str):
        try:
            return selectors.brand_owned(account=self.get_account(), brand_id=uuid.UUID(brand_id))
        except ValueError:
            raise NotFound("brand") from None

    @extend_schema(operation_id="brand_get", responses={200: BrandEnvelope},
                   tags=TAGS, summary="One brand")
    def get(self, request, BrandId):
        return Response({"Brand": brand_out(self.get_brand(BrandId))})

    @extend_schema(operation_id="brand_update", request=BrandUpdateIn,
                   responses={200: BrandEnvelope, **NAME_TAKEN}, tags=TAGS,
                   summary="Change a brand: the fields given, and the template Types named")
    def put(self, request, BrandId):
        brand = self.get_brand(BrandId)
        data = BrandUpdateIn(data=request.data)
        data.is_valid(raise_exception=True)
        brand = services.brand_update(brand=brand, **data.to_brand_fields())
        return Response({"Brand": brand_out(brand)})
