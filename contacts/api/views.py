"""Spec 004's contact endpoints (``/v1/contacts``)."""

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from api.families import NOTIFICATIONS
from api.views import HeraldAPIView
from common.errors import HeraldError
from contacts import selectors, services
from contacts.api.serializers import (
    ContactEnvelope,
    ContactIn,
    ContactOut,
    ContactsEnvelope,
    ContactsQuery,
    PushTokenIn,
)
from contacts.models import Contact

TAGS = ["contacts"]
IDENTIFIER = OpenApiParameter(
    "identifier", str, OpenApiParameter.PATH,
    description="The contact's uuid, email, E.164 phone, external id or Slack user id.")
Deleted = inline_serializer("ContactDeleted", {"success": serializers.BooleanField(),
                                               "deleted": serializers.BooleanField()})


class ContactsView(HeraldAPIView):
    family = NOTIFICATIONS

    def get_contact(self, identifier: str) -> Contact:
        contact = selectors.contact_find(account=self.get_account(), identifier=identifier)
        if contact is None:
            raise HeraldError("NOT_FOUND", "Contact not found.", status=404)
        return contact


def _contact(contact: Contact, status: int = 200) -> Response:
    contact = selectors.contacts_with_tokens(Contact.objects.filter(pk=contact.pk)).get()
    return Response({"success": True, "contact": ContactOut(contact).data}, status=status)


class Contacts(ContactsView):
    # Contacts are shared by both modes and live sends go to them: a test key lists and reads
    # them but writes none (403), so it can neither plant one nor fill the contact quota.
    configuration = True

    @extend_schema(parameters=[ContactsQuery], responses=ContactsEnvelope, tags=TAGS,
                   operation_id="v1_contacts_list",
                   summary="The account's contacts, newest first; search email, name, phone")
    def get(self, request):
        query = ContactsQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        limit, offset = query.validated_data["limit"], query.validated_data["offset"]
        contacts = selectors.contacts_list(account=self.get_account(),
                                           search=query.validated_data.get("search", ""))
        page = selectors.contacts_with_tokens(contacts)[offset:offset + limit]
        return Response({"success": True, "data": {
            "contacts": ContactOut(page, many=True).data, "total": contacts.count(),
            "limit": limit, "offset": offset}})

    @extend_schema(request=ContactIn, responses={200: ContactEnvelope, 201: ContactEnvelope},
                   tags=TAGS, summary="Create a contact, or update the one an identifier "
                   "names (201 created, 200 updated); unknown fields go to meta")
    def post(self, request):
        contact, created = services.contact_upsert(account=self.get_account(),
                                                   data=request.data)
        return _contact(contact, 201 if created else 200)


class ContactDetail(ContactsView):
    configuration = True  # a test key reads contacts; changing one needs a live key

    @extend_schema(parameters=[IDENTIFIER], responses=ContactEnvelope, tags=TAGS,
                   summary="Find a contact by uuid, email, phone, external id or Slack id")
    def get(self, request, identifier):
        return _contact(self.get_contact(identifier))

    @extend_schema(parameters=[IDENTIFIER], request=ContactIn, responses=ContactEnvelope,
                   tags=TAGS, summary="Change only the given fields (unknown ones into meta)")
    def patch(self, request, identifier):
        contact = services.contact_update(contact=self.get_contact(identifier),
                                          data=request.data)
        return _contact(contact)

    @extend_schema(parameters=[IDENTIFIER], responses={200: Deleted}, tags=TAGS,
                   summary="Hard delete (GDPR): also erases it from stored deliveries")
    def delete(self, request, identifier):
        services.contact_delete(contact=self.get_contact(identifier))
        return Response({"success": True, "deleted": True})


class PushTokens(ContactsView):
    configuration = True  # a test key reads contacts; changing one needs a live key

    def _token(self, request) -> str:
        data = PushTokenIn(data=request.data)
        data.is_valid(raise_exception=True)
        return data.validated_data["token"]

    @extend_schema(parameters=[IDENTIFIER], request=PushTokenIn, responses=ContactEnvelope,
                   tags=TAGS, summary="Add a push token (Expo or FCM) to the contact")
    def post(self, request, identifier):
        contact = self.get_contact(identifier)
        services.push_token_add(contact=contact, token=self._token(request))
        return _contact(contact)

    @extend_schema(parameters=[IDENTIFIER], request=PushTokenIn, responses=ContactEnvelope,
                   tags=TAGS, summary="Remove a push token from the contact")
    def delete(self, request, identifier):
        contact = self.get_contact(identifier)
        services.push_token_remove(contact=contact, token=self._token(request))
        return _contact(contact)
