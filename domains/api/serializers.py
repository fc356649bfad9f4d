from rest_framework import serializers

from api.fields import Str, StrictSerializer


class DomainIn(StrictSerializer):
    domain = Str(max_length=1000, allow_blank=True,
                 help_text="Domain to authenticate (e.g. mail.example.com).")


class DnsRecordOut(serializers.Serializer):
    type = serializers.CharField()
    host = serializers.CharField()
    data = serializers.CharField()
    valid = serializers.BooleanField()


class DomainOut(serializers.Serializer):
    """Spec 001's shape; ``id`` is the provider's id (ours where it has no integer id)."""

    id = serializers.IntegerField(source="public_id")
    domain = serializers.CharField()
    verified = serializers.BooleanField()
    enabled = serializers.BooleanField()
    dnsRecords = DnsRecordOut(source="dns_records", many=True)
