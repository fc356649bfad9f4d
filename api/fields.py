"""Strict serializer fields shared by every API family: JSON types are not coerced."""

from typing import Any

from rest_framework import serializers

from common.headers import ONE_LINE, header_problem


class StrictSerializer(serializers.Serializer):
    """Rejects fields it does not know, so a typo (``commsTemplateID``) is an error, not a no-op."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


class Guid(serializers.UUIDField):
    """A GUID given as a JSON string (DRF's UUIDField would also take an integer)."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)


class Str(serializers.CharField):
    """A JSON string: numbers are not silently turned into text."""

    default_error_messages = {"not_a_string": "Must be a string."}

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


class HeaderStr(Str):
    """A string that goes into an email header (a subject, a name): one line, or refused."""

    default_error_messages = {"not_one_line": ONE_LINE[0].upper() + ONE_LINE[1:]}

    def to_internal_value(self, data: Any) -> Any:
        value = super().to_internal_value(data)
        if header_problem(value):
            self.fail("not_one_line")
        return value


class Email(serializers.EmailField):
    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data).strip()
