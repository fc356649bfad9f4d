"""``api.fields.StrictSerializer``'s fields: each instance its own, whatever the copy."""

from rest_framework import serializers

from api.fields import Guid, Str, StrictSerializer


class Item(StrictSerializer):
    name = Str(max_length=5)


class Order(StrictSerializer):
    id = Guid()
    note = Str(max_length=3, required=False)
    tags = serializers.ListField(child=Str(max_length=2), required=False)
    items = Item(many=True, required=False)
    extras = serializers.JSONField(required=False, default=dict)
    flags = serializers.Field(required=False, default=[])


def test_each_instance_has_its_own_bound_fields() -> None:
    """Plain fields are shallow copies of the declared ones: never the declared field itself,
    never another instance's; bound to their own serializer; their checks intact."""
    first, second = Order(data={}), Order(data={})
    for name in ("id", "note", "tags", "items", "extras", "flags"):
        one, other = first.fields[name], second.fields[name]
        assert one is not other and one is not Order._declared_fields[name]
        assert one.parent is first and other.parent is second
    # A child (a list's, a nested serializer's) is bound inside its own copy.
    assert first.fields["tags"].child is not second.fields["tags"].child
    assert first.fields["tags"].child.parent is first.fields["tags"]
    assert first.fields["items"].child.parent is first.fields["items"]
    # A mutable default is never one object shared by every request.
    assert first.fields["flags"].default is not second.fields["flags"].default
    assert Order._declared_fields["note"].field_name is None  # the declared one stays unbound


def test_a_plain_field_is_copied_without_running_its_init_again() -> None:
    """The cost this saves (docs/PERFORMANCE.md): DRF's deep copy builds every field anew;
    a plain field's copy shares the declared field's validators, which are only read."""
    declared = Order._declared_fields["note"]
    copied = Order(data={}).fields["note"]
    assert copied.validators is declared.validators
    assert any(type(v).__name__ == "MaxLengthValidator" for v in copied.validators)


def test_validation_is_unchanged() -> None:
    bad = Order(data={"id": 1, "note": "toolong", "tags": ["abc"], "items": [{"name": 7}],
                      "typo": True})
    assert not bad.is_valid()
    assert set(bad.errors) == {"typo"}  # unknown fields first, as before
    bad = Order(data={"id": 1, "note": "toolong", "tags": ["abc"], "items": [{"name": 7}]})
    assert not bad.is_valid()
    assert set(bad.errors) == {"id", "note", "tags", "items"}
    good = Order(data={"id": "0b5f7c1e-8d2a-4e43-9a57-3f1c2d4e5f60", "note": "ok"})
    assert good.is_valid(), good.errors
    assert good.validated_data["note"] == "ok"
