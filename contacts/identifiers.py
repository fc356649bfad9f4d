"""Contact input as spec 004 names it: identifiers normalised, other fields checked, unknown
fields turned into camelCased ``meta`` keys. Plain data in and out, no database."""

import json
import re
from dataclasses import dataclass, field
from typing import Any

import phonenumbers
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email

from common.errors import HeraldError

# API name → model field, with each text field's longest value.
IDENTIFIER_FIELDS = {"email": "email", "phone": "phone", "externalId": "external_id",
                     "slack": "slack", "telegram": "telegram", "discord": "discord"}
PROFILE_FIELDS = {"name": "name", "avatar": "avatar", "username": "username"}
MAX_LENGTH = {"email": 254, "phone": 64, "externalId": 255, "slack": 64, "telegram": 64,
              "discord": 64, "name": 255, "avatar": 2048, "username": 255}
# What the contact JSON shows but a client cannot set.
READ_ONLY = frozenset({"uuid", "pushTokens", "createdAt", "updatedAt"})
META_KEY_MAX = 64
META_MAX_BYTES = 16_384
EXPO_TOKEN = re.compile(r"^Expo(nent)?PushToken\[[^\[\]\s]{1,500}\]$")
FCM_TOKEN = re.compile(r"^[A-Za-z0-9_:-]{20,512}$")
SLACK_USER = re.compile(r"^[UW][A-Z0-9]{6,}$")
_WORD_BREAK = re.compile(r"[_\-\s.]+")
_SURROGATES = re.compile("[\ud800-\udfff\x00]")


def invalid(name: str, message: str) -> HeraldError:
    return HeraldError("VALIDATION_ERROR", f"{name}: {message}", status=400)


def email_normalize(value: str) -> str:
    """Lower-cased and checked, else ``INVALID_EMAIL``."""
    address = value.strip().lower()
    try:
        validate_email(address)
    except ValidationError:
        raise HeraldError("INVALID_EMAIL", f"Bad email format: {value[:254]!r}",
                          status=400) from None
    return address


def phone_parse(value: str) -> str | None:
    """E.164 (``+14155551234``) of a valid international number, else None."""
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def phone_normalize(value: str) -> str:
    phone = phone_parse(value) if value.strip().startswith("+") else None
    if phone is None:
        raise HeraldError("INVALID_PHONE", "Bad phone (use E.164: +1234567890)", status=400)
    return phone


def push_token_provider(token: Any, name: str = "token") -> str:
    """``expo`` or ``fcm`` from the token's shape; anything else is a 400 naming the field."""
    if not isinstance(token, str):
        raise invalid(name, "Must be a string.")
    if EXPO_TOKEN.match(token):
        return "expo"
    if FCM_TOKEN.match(token):
        return "fcm"
    raise invalid(name, "Not a push token (ExponentPushToken[…] or an FCM registration token).")


def camel_case(key: str) -> str:
    """``favorite_color``, ``favorite-color`` and ``Favorite color`` → ``favoriteColor``;
    a key already in camelCase stays as it is."""
    words = [w for w in _WORD_BREAK.split(key.strip()) if w]
    if not words:
        return ""
    first, rest = words[0], words[1:]
    return first[:1].lower() + first[1:] + "".join(w[:1].upper() + w[1:] for w in rest)


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise invalid(name, "Must be a string.")
    if _SURROGATES.search(value):
        raise invalid(name, "Null characters and lone surrogates are not allowed.")
    value = value.strip()
    if len(value) > MAX_LENGTH[name]:
        raise invalid(name, f"At most {MAX_LENGTH[name]} characters.")
    return value


def _identifier(name: str, value: Any) -> str | None:
    """None (or "") clears the identifier."""
    if value is None:
        return None
    text = _text(name, value)
    if not text:
        return None
    if name == "email":
        return email_normalize(text)
    if name == "phone":
        return phone_normalize(text)
    return text


def _profile(name: str, value: Any) -> str:
    if value is None:
        return ""
    text = _text(name, value)
    if name == "avatar" and text:
        try:
            URLValidator(schemes=["http", "https"])(text)
        except ValidationError:
            raise invalid(name, "Must be an http(s) URL.") from None
    return text


def _check_json(name: str, value: Any) -> None:
    """No NUL or lone surrogate anywhere: PostgreSQL's jsonb refuses them."""
    if isinstance(value, str):
        if _SURROGATES.search(value):
            raise invalid(name, "Null characters and lone surrogates are not allowed.")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_json(name, key)
            _check_json(name, item)
    elif isinstance(value, list):
        for item in value:
            _check_json(name, item)


@dataclass
class ContactInput:
    """Model-field values given (None clears an identifier), meta changes (None removes a
    key), and a push token to add."""

    fields: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    push_token: str | None = None

    @property
    def identifiers(self) -> dict[str, str]:
        return {f: v for f, v in self.fields.items()
                if f in IDENTIFIER_FIELDS.values() and v is not None}


def _meta_key(raw: str) -> str:
    key = camel_case(raw)
    if not key or len(key) > META_KEY_MAX:
        raise invalid(raw[:META_KEY_MAX] or "meta",
                      f"Custom field names are 1 to {META_KEY_MAX} characters.")
    return key


def contact_input_parse(data: Any) -> ContactInput:
    """The API's fields (spec 004's names; snake_case spellings of them too) → ContactInput.
    Unknown fields and the members of an explicit ``meta`` object become meta keys."""
    if not isinstance(data, dict):
        raise invalid("body", "Expected a JSON object.")
    parsed = ContactInput()
    for raw, value in data.items():
        _check_json("body", raw)
        name = camel_case(raw)
        if name in READ_ONLY:
            raise invalid(raw, "Read-only field.")
        if name in IDENTIFIER_FIELDS:
            parsed.fields[IDENTIFIER_FIELDS[name]] = _identifier(name, value)
        elif name in PROFILE_FIELDS:
            parsed.fields[PROFILE_FIELDS[name]] = _profile(name, value)
        elif name == "pushToken":
            push_token_provider(value, raw)
            parsed.push_token = value
        elif name == "meta":
            if not isinstance(value, dict):
                raise invalid("meta", "Must be an object.")
            _check_json("meta", value)
            parsed.meta.update({_meta_key(k): v for k, v in value.items()})
        else:
            _check_json(raw, value)
            parsed.meta[_meta_key(raw)] = value
    return parsed


def meta_merge(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``changes`` over ``current``; a None value removes its key. Bounded in size."""
    merged = {**current, **changes}
    merged = {k: v for k, v in merged.items() if v is not None}
    if len(json.dumps(merged, separators=(",", ":"))) > META_MAX_BYTES:
        raise invalid("meta", f"Custom fields take at most {META_MAX_BYTES} bytes as JSON.")
    return merged


def identifier_candidates(identifier: str) -> list[tuple[str, Any]]:
    """The (model field, value) pairs a path identifier may mean, most specific first."""
    from uuid import UUID

    value = identifier.strip()
    candidates: list[tuple[str, Any]] = []
    if not value or len(value) > 2048 or _SURROGATES.search(value):
        return candidates
    try:
        candidates.append(("id", UUID(value)))
    except ValueError:
        pass
    if "@" in value and len(value) <= MAX_LENGTH["email"]:
        candidates.append(("email", value.lower()))
    if value.startswith("+") and (phone := phone_parse(value)):
        candidates.append(("phone", phone))
    if len(value) <= MAX_LENGTH["externalId"]:
        candidates.append(("external_id", value))
    if SLACK_USER.match(value) and len(value) <= MAX_LENGTH["slack"]:
        candidates.append(("slack", value))
    return candidates
