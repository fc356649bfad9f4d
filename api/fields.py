"""Strict serializer fields shared by every API family: JSON types are not coerced."""

import copy
from datetime import datetime
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from common.headers import ONE_LINE, header_problem
from common.times import iso
from comms.scheduling import send_at_read


class StrictSerializer(serializers.Serializer):
    """Rejects fields it does not know, so a typo (``commsTemplateID``) is an error, not a no-op."""

    def get_fields(self) -> dict[str, serializers.Field]:
        """The declared fields, each a fresh unbound copy for this instance, as DRF's — but a
        plain field (no nested field or serializer, no mutable default) is copied shallowly:
        DRF's deep copy re-runs every field's ``__init__`` (validators, error messages),
        6 % of the API's atomic create + send (docs/PERFORMANCE.md, 2026-12-07)."""
        return {name: copy.copy(field) if _plain(field) else copy.deepcopy(field)
                for name, field in self._declared_fields.items()}

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


def _plain(field: serializers.Field) -> bool:
    """A field whose shallow copy shares nothing a serializer instance changes: binding sets
    attributes of the copy only, and its validators and messages are only read. A serializer,
    a field with a child (bound to its parent at ``__init__``) or a mutable default (one list
    for every request) is deep-copied."""
    return not (isinstance(field, serializers.BaseSerializer) or hasattr(field, "child")
                or hasattr(field, "child_relation")
                or isinstance(field.default, list | dict | set)
                or isinstance(field.initial, list | dict | set))


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


class StrictBool(serializers.BooleanField):
    """A JSON true or false, not "yes" or 1."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


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


@extend_schema_field({
    "type": "string", "format": "date-time", "nullable": True,
    "description": "When to send: ISO 8601 with a UTC offset (2027-04-17T19:00:00+02:00 or "
                   "…Z), at most a year ahead. A time in the past, null or absent: now. Until "
                   "then the send is `scheduled` and can be cancelled (DELETE on its id)."})
class SendAt(serializers.Field):
    """A send time (``comms.scheduling.send_at_read``): ISO 8601 with an offset, past → None
    (send now); no offset, not a string, or more than a year ahead → this field's 400 in the
    family's shape. Not DRF's DateTimeField: it would take a naive time in the server's zone."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_null", True)
        kwargs.setdefault("default", None)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> datetime | None:
        try:
            return send_at_read(data)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None

    def to_representation(self, value: datetime | None) -> str | None:
        return iso(value)
