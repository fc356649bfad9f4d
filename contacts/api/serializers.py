from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from api.fields import Str, StrictSerializer
from common.times import iso
from contacts.models import Contact


class ContactsQuery(StrictSerializer):
    limit = serializers.IntegerField(min_value=1, max_value=100, default=50)
    offset = serializers.IntegerField(min_value=0, max_value=2**31 - 1, default=0)
    search = Str(required=False, allow_blank=True, max_length=254)


class ContactIn(serializers.Serializer):
    """The documented fields, for the schema only: the body is parsed by
    ``contacts.identifiers.contact_input_parse``, which also keeps unknown fields (→ meta)."""

    email = serializers.EmailField(required=False, allow_null=True)
    phone = serializers.CharField(required=False, allow_null=True, help_text="E.164")
    name = serializers.CharField(required=False, allow_null=True)
    externalId = serializers.CharField(required=False, allow_null=True)
    avatar = serializers.URLField(required=False, allow_null=True)
    username = serializers.CharField(required=False, allow_null=True)
    slack = serializers.CharField(required=False, allow_null=True)
    telegram = serializers.CharField(required=False, allow_null=True)
    discord = serializers.CharField(required=False, allow_null=True)
    meta = serializers.DictField(required=False, help_text="Merged into the contact's meta.")


class PushTokenIn(StrictSerializer):
    token = Str(max_length=512)


class ContactOut(serializers.Serializer):
    uuid = serializers.UUIDField(source="id")
    email = serializers.CharField(allow_null=True)
    phone = serializers.CharField(allow_null=True)
    name = serializers.CharField()
    externalId = serializers.CharField(source="external_id", allow_null=True)
    avatar = serializers.CharField()
    username = serializers.CharField()
    slack = serializers.CharField(allow_null=True)
    telegram = serializers.CharField(allow_null=True)
    discord = serializers.CharField(allow_null=True)
    meta = serializers.DictField()
    pushTokens = serializers.SerializerMethodField()
    createdAt = serializers.SerializerMethodField()
    updatedAt = serializers.SerializerMethodField()

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_pushTokens(self, contact: Contact) -> list[str]:
        return [t.token for t in contact.push_tokens.all()]

    @extend_schema_field(OpenApiTypes.DATETIME)
    def get_createdAt(self, contact: Contact) -> Any:
        return iso(contact.created_at)

    @extend_schema_field(OpenApiTypes.DATETIME)
    def get_updatedAt(self, contact: Contact) -> Any:
        return iso(contact.updated_at)


class ContactEnvelope(serializers.Serializer):
    success = serializers.BooleanField()
    contact = ContactOut()


class ContactsPage(serializers.Serializer):
    contacts = ContactOut(many=True)
    total = serializers.IntegerField()
    limit = serializers.IntegerField()
    offset = serializers.IntegerField()


class ContactsEnvelope(serializers.Serializer):
    success = serializers.BooleanField()
    data = ContactsPage()
