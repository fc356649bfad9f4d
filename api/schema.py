"""What the shared API layer (``api.views.HeraldAPIView``) does to every operation, in the
OpenAPI schema: a drf-spectacular postprocessing hook (``SPECTACULAR_SETTINGS``).

Read from each operation's view class, so a new endpoint is documented without a list:
every operation of an API-key-authenticated view can answer 429 (the key's rate limit, the
daily delivery quota, the brute-force guard) with ``Retry-After`` and ``X-RateLimit-*``; every
POST takes ``Idempotency-Key`` / ``X-Idempotency-Key``, replays with ``Idempotent-Replayed:
true``, answers a key still in flight with 409 and ``Retry-After``, and the key on another
request with the family's refusal (check-in: 409, the others: 422). Error bodies are the shape
of the view's family (``api.families``).
"""

import re
from functools import lru_cache
from typing import Any

from django.conf import settings
from drf_spectacular import openapi as spectacular_openapi
from drf_spectacular.plumbing import get_doc
from rest_framework import permissions, serializers

from api.authentication import SubscriptionKeyAuthentication
from api.families import Family
from api.fields import StrictSerializer
from api.idempotency import HEADERS
from api.views import TEST_KEY_READ_ONLY, HeraldAPIView

Schema = dict[str, Any]

_INT = {"type": "integer"}
HEADERS_DOC: dict[str, Schema] = {
    "Retry-After": {"schema": _INT, "description": "Seconds to wait before retrying."},
    "X-RateLimit-Limit": {"schema": _INT,
                          "description": "Requests per second allowed to this API key."},
    "X-RateLimit-Remaining": {"schema": _INT, "description": "Requests left this second."},
    "X-RateLimit-Reset": {"schema": _INT,
                          "description": "Unix time (s) at which the window ends."},
    "Idempotent-Replayed": {"schema": {"type": "string", "enum": ["true"]},
                            "description": "This is the stored answer to the first request "
                                           "with this idempotency key."},
    "X-Request-Id": {"schema": {"type": "string", "maxLength": 128},
                     "description": "This request's id: the caller's well-formed "
                                    "X-Request-Id, else one Herald made. Logged, and carried "
                                    "by the webhooks of what the request caused."},
}
RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
KEY_PARAMETERS = [name for _, name in HEADERS]  # X-Idempotency-Key, Idempotency-Key


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _key_parameter(name: str) -> Schema:
    hours = settings.HERALD_IDEMPOTENCY_TTL_SECONDS // 3600
    return {"name": name, "in": "header", "required": False,
            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            "description": "1 to 255 printable characters. A retry with the same key, method, "
                           f"path and body replays the first 2xx answer for {hours} h instead "
                           "of running again. Either header (the same value if both)."}


def _add_response(operation: Schema, code: int, family: Family, description: str,
                  headers: dict[str, bool]) -> None:
    """Document ``code`` with the family's error body; merged into a response the view
    documented itself (its description first, its own body kept alongside). The family's
    component is named as the views' own error responses name it, where they have one; a
    component a view defined wins."""
    name, media = family.error_component, family.media_type
    response = operation["responses"].setdefault(str(code), {"description": ""})
    response["description"] = "; ".join(filter(None, [response.get("description"), description]))
    content = response.setdefault("content", {})
    theirs = content.get(media, {}).get("schema")
    if theirs is None or theirs == _ref(name):
        content[media] = {"schema": _ref(name)}
    elif _ref(name) not in theirs.get("anyOf", []):
        content[media] = {**content[media], "schema": {"anyOf": [theirs, _ref(name)]}}
    _add_headers(response, headers)


def _add_headers(response: Schema, headers: dict[str, bool]) -> None:
    for header, required in headers.items():  # inline: a $ref could not say "required"
        response.setdefault("headers", {})[header] = {**HEADERS_DOC[header], "required": required}


BODY_METHODS = ("POST", "PUT", "PATCH")


def _unauthorized(family: Family) -> str:
    sentence = ("No API key, or one that is malformed, invalid or revoked "
                "(Authorization: Bearer <key>)")
    if SubscriptionKeyAuthentication in family.authentication:
        sentence += "; or Ocp-Apim-Subscription-Key missing or not the key's account's"
    return sentence + "."


def _document(operation: Schema, method: str, view: type[HeraldAPIView]) -> None:
    family = view.family
    # Every error is in the family's shape: one the view declared with a description only
    # (a 404 of a path without parameters, a provider's 502) gets the family's body too.
    for code in [c for c, r in operation["responses"].items()
                 if c.isdigit() and int(c) >= 400 and "content" not in r]:
        _add_response(operation, int(code), family, "", {})
    successes = [r for code, r in operation["responses"].items() if code.startswith("2")]
    for response in successes:
        _add_headers(response, dict.fromkeys(RATE_HEADERS, False))
    _add_response(operation, 401, family, _unauthorized(family), {})
    _add_response(operation, 429, family, (
        "Rate limited: the API key's requests per second, today's delivery quota (sends) or "
        "too many failed authentications from this address; retry after Retry-After."),
        {"Retry-After": True, **dict.fromkeys(RATE_HEADERS, False)})
    if view.configuration and method not in permissions.SAFE_METHODS:
        _add_response(operation, 403, family, TEST_KEY_READ_ONLY, {})
    _document_input(operation, method, family)
    if method != "POST":
        return
    parameters = operation.setdefault("parameters", [])
    present = {p.get("name") for p in parameters}
    parameters += [_key_parameter(name) for name in KEY_PARAMETERS if name not in present]
    for response in successes:
        _add_headers(response, {"Idempotent-Replayed": False})
    _add_response(operation, 400, family, "Malformed idempotency key, or the two headers "
                  "differ", {})
    _add_response(operation, 409, family, "The first request with this idempotency key is "
                  "still running: retry after Retry-After", {"Retry-After": False})
    # Spec 000's family answers a reused key with 409 (its 422 means something else).
    _add_response(operation, family.key_reused_status, family, "The idempotency key "
                  "was used for a different request (method, path or body)", {})


def _document_input(operation: Schema, method: str, family: Family) -> None:
    """The answers to what the caller sent: 400 for a body or query that does not validate,
    404 for a path naming nothing of the account's, 413/415 for a body too large or not JSON."""
    where = {p.get("in") for p in operation.get("parameters", [])}
    body = "requestBody" in operation
    if body or "query" in where:
        _add_response(operation, 400, family, "Invalid input: the body is not JSON or a "
                      "field or query parameter is invalid (each named)", {})
    if "path" in where:
        _add_response(operation, 404, family, "Nothing of this account's has this id", {})
    if method in BODY_METHODS:
        _add_response(operation, 413, family, "The request body is larger than the limit "
                      "(5 MB), chunked or not", {})
    if body:
        _add_response(operation, 415, family, "The body is not application/json", {})


REQUEST_ID_PARAMETER: Schema = {
    "name": "X-Request-Id", "in": "header", "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 128},
    "description": "Your id for this request (letters, digits and ._:+=/@-, starting with a "
                   "letter or digit): answered back, logged and carried by the webhooks of "
                   "what the request causes. Absent or otherwise, Herald makes one."}


def _request_id(operation: Schema) -> None:
    """``X-Request-Id``: taken on every request, answered on every response (the request-id
    middleware sets it, errors too)."""
    parameters = operation.setdefault("parameters", [])
    if not any(p.get("name") == "X-Request-Id" for p in parameters):
        parameters.append(REQUEST_ID_PARAMETER)
    for response in operation.get("responses", {}).values():
        _add_headers(response, {"X-Request-Id": _request_id_always()})


def _request_id_always() -> bool:
    return any(m.endswith(("RequestIdMiddleware", "request_id_middleware"))
               for m in settings.MIDDLEWARE)


def document_api_layer(result: Schema, generator: Any, request: Any, public: bool) -> Schema:
    """Postprocessing hook: the shared layer's headers and responses on every operation of
    an API-key view (``HeraldAPIView`` with authentication classes)."""
    families: dict[str, Family] = {}
    for path, _, method, callback in generator.endpoints or []:
        view = getattr(callback, "cls", None)
        operation = result["paths"].get(path, {}).get(method.lower())
        if (operation is None or not isinstance(view, type)
                or not issubclass(view, HeraldAPIView) or not view.authentication_classes):
            continue
        _document(operation, method, view)
        families[view.family.name] = view.family
    for item in result["paths"].values():
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            _request_id(operation)
            operation["responses"] = dict(sorted(operation["responses"].items()))
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    for _, family in sorted(families.items()):
        schemas.setdefault(family.error_component, family.error_schema)
    return result


class AutoSchema(spectacular_openapi.AutoSchema):
    """drf-spectacular's, with names that cannot collide (a collision is a warning of
    ``check --deploy``, and a silently wrong schema for components):

    - a serializer whose class name another module uses too (``SendIn`` of three families)
      is named after its view's family as well: ``CheckinSendIn``, ``NotificationsSendIn``,
      ``MultichannelSendIn`` (after its module outside the families);
    - a GET of a collection (a path with a ``{id}`` path below it) is a ``…_list``
      (``v1_webhooks_list`` beside ``v1_webhooks_retrieve``); a path ending in two parameters
      keeps the first in its id (``/v1/send/{event}/{channel}``: ``v1_send_event_create``).
    """

    def get_serializer_name(self, serializer: Any, direction: str) -> str:
        name = super().get_serializer_name(serializer, direction)
        cls = serializer if isinstance(serializer, type) else type(serializer)
        if cls.__name__ not in _ambiguous_serializer_names():
            return name
        if isinstance(self.view, HeraldAPIView):
            return self.view.family.name.title() + name
        parts = [p for p in cls.__module__.split(".") if p not in ("api", "serializers")]
        return "".join(p.title().replace("_", "") for p in parts) + name

    def _map_basic_serializer(self, serializer: Any, direction: str) -> Schema:
        """A strict serializer's body refuses unknown fields (400 "Unknown field."): the
        schema says so, instead of repeating the base class's docstring."""
        schema = super()._map_basic_serializer(serializer, direction)
        if isinstance(serializer, StrictSerializer) or (
                isinstance(serializer, type) and issubclass(serializer, StrictSerializer)):
            schema["additionalProperties"] = False
            if schema.get("description") == get_doc(StrictSerializer):
                del schema["description"]
        return schema

    def get_description(self) -> str:
        """A view with no docstring of its own is described by its family, not by the
        docstring of the API layer's base class."""
        description = super().get_description()
        if isinstance(self.view, HeraldAPIView) and description == get_doc(HeraldAPIView):
            return self.view.family.description
        return description

    def get_operation_id(self) -> str:
        operation_id = super().get_operation_id()
        if (self.method == "GET" and operation_id.endswith("_retrieve")
                and self.path.rstrip("/") in _collections()):
            return operation_id.removesuffix("_retrieve") + "_list"
        if match := re.search(r"\{(\w+)\}/\{\w+\}/?$", self.path):
            head, _, action = operation_id.rpartition("_")
            return f"{head}_{match.group(1)}_{action}"
        return operation_id


@lru_cache(maxsize=1)
def _ambiguous_serializer_names() -> frozenset[str]:
    """Serializer class names defined in more than one module (read once the URLs, and so
    every API module, are imported: when the schema is generated)."""
    modules: dict[str, set[str]] = {}
    todo = [serializers.BaseSerializer]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            modules.setdefault(sub.__name__, set()).add(sub.__module__)
            todo.append(sub)
    return frozenset(name for name, found in modules.items() if len(found) > 1)


@lru_cache(maxsize=1)
def _collections() -> frozenset[str]:
    """API paths ending in a name (``/v1/webhooks``, ``/…/event/{event_id}/reminders``) that
    have a ``/{parameter}`` path right below them."""
    from drf_spectacular.generators import EndpointEnumerator

    paths = [path for path, *_ in EndpointEnumerator().get_api_endpoints()]
    return frozenset(m.group(1) for path in paths
                     if (m := re.fullmatch(r"(\S*[^{}/]+)/\{\w+\}/?", path)))
