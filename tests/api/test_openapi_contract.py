"""The schema is the integrator's contract (issue #17): each family's bodies under names of
their own, its authentication declared, every answer a typed component, the errors, the
idempotency and request-id headers documented, and the spec documents' examples."""

from collections import Counter
from typing import Any

import pytest
from drf_spectacular.generators import SchemaGenerator

Schema = dict[str, Any]
METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def schema() -> Schema:
    return SchemaGenerator().get_schema(request=None, public=True)


def _operations(schema: Schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def _resolve(schema: Schema, node: Schema) -> Schema:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def _request(schema: Schema, path: str, method: str = "post") -> tuple[str, Schema]:
    ref = schema["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
    return ref["$ref"].rsplit("/", 1)[1], _resolve(schema, ref)


@pytest.mark.parametrize(("path", "component", "fields", "required"), [
    ("/comms/v1/api/comms/send", "CheckinSendInRequest", {"attendeeId", "templateId",
                                                          "correlationId"},
     {"attendeeId", "templateId"}),
    ("/v1/send/{event}", "NotificationsSendInRequest", {"to", "payload", "language", "from",
                                                        "overrides"}, {"to"}),
    ("/v1/send/{event}/{channel}", "NotificationsSendInRequest", {"to"}, {"to"}),
    ("/api/v1/communications/send", "MultichannelSendInRequest", {"subject", "body",
                                                                  "channels", "isHtml"},
     {"subject", "body", "channels"}),
    ("/v1/events", "NotificationsEventInRequest", {"identifier", "channels", "templates"},
     {"identifier", "channels", "templates"}),
    ("/checkin/v1/api/event", "CheckinEventInRequest", {"name", "venue"}, {"name"}),
])
def test_each_send_and_event_body_is_its_familys_own(schema, path, component, fields,
                                                     required):
    name, body = _request(schema, path)
    assert name == component
    assert fields <= set(body["properties"])
    assert set(body.get("required", [])) == required
    assert body["additionalProperties"] is False  # unknown fields are a 400


def test_spec_004s_to_takes_every_documented_form(schema):
    _, body = _request(schema, "/v1/send/{event}")
    kinds = [option.get("type") for option in body["properties"]["to"]["oneOf"]]
    assert kinds == ["string", "object", "array"]


def test_operation_ids_are_unique_and_component_names_name_no_module(schema):
    ids = Counter(op["operationId"] for _, _, op in _operations(schema))
    assert [i for i, n in ids.items() if n > 1] == []
    for listing in ("v1_deliveries_list", "v1_integrations_list", "v1_webhooks_messages_list",
                    "api_v1_communications_inapp_list"):
        assert ids[listing] == 1, listing
    names = schema["components"]["schemas"]
    assert not [n for n in names if "Views" in n or "Serializers" in n]
    assert {"EmailTypeEnum", "EmailStateEnum", "ChannelEnum"} <= set(names)
    assert not [n for n in names  # no made-up names (Channel108Enum)
                if n.endswith("Enum") and n[:-4].rstrip("0123456789") != n[:-4]]


def test_security_schemes_the_bearer_key_and_the_checkin_subscription_key(schema):
    schemes = schema["components"]["securitySchemes"]
    assert schemes["apiKey"] == {"type": "http", "scheme": "bearer"}
    assert schemes["subscriptionKey"] == {"type": "apiKey", "in": "header",
                                          "name": "Ocp-Apim-Subscription-Key"}
    for path, _, operation in _operations(schema):
        checkin = path.startswith(("/checkin/", "/comms/"))
        expected = ([{"checkinApiKey": [], "subscriptionKey": []}] if checkin
                    else [{"apiKey": []}])
        assert operation["security"] == expected, path


# Fields that are free-form by design: a contact's custom fields, secrets-stripped provider
# settings, a provider event's own detail, a webhook message's payload.
FREE_FORM = {"meta", "config", "detail", "payload"}


def _loose(schema: Schema, node: Schema, seen: frozenset[str] = frozenset()) -> list[str]:
    """Objects in ``node`` that say nothing of their fields (``{}`` or a map of anything),
    outside the free-form fields."""
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[1]
        return [] if name in seen else _loose(schema, _resolve(schema, node), seen | {name})
    found = []
    for option in node.get("oneOf", []) + node.get("anyOf", []) + node.get("allOf", []):
        found += _loose(schema, option, seen)
    if node.get("type") == "array":
        found += _loose(schema, node.get("items", {}), seen)
    values = node.get("additionalProperties")
    free_object = node.get("type") == "object" and values in (None, {}, True)
    if node == {} or (free_object and not node.get("properties")):
        found.append(str(node))
    if isinstance(values, dict) and values:
        found += _loose(schema, values, seen)
    for name, sub in node.get("properties", {}).items():
        if name not in FREE_FORM:
            found += _loose(schema, sub, seen)
    return found


def test_every_success_body_is_a_typed_component(schema):
    for path, method, operation in _operations(schema):
        for code, response in operation["responses"].items():
            if not code.startswith("2") or "content" not in response:
                continue
            body = response["content"]["application/json"]["schema"]
            assert "$ref" in body, (path, method, code)
            assert _loose(schema, body) == [], (path, method, code)
    for path, field in [("/v1/deliveries", "deliveries"), ("/v1/events", "events"),
                        ("/v1/integrations", "integrations")]:
        ok = schema["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
        data = _resolve(schema, _resolve(schema, ok["schema"])["properties"]["data"])
        assert _resolve(schema, data["properties"][field]["items"])["properties"], path
    event = schema["components"]["schemas"]["V004Event"]
    assert {"identifier", "name", "channels", "templates"} <= set(event["properties"])
    trace = schema["components"]["schemas"]["V004Trace"]
    assert {"delivery", "timeline", "content", "attempts"} <= set(trace["properties"])


def test_every_operation_documents_401_and_its_input_errors(schema):
    for path, method, operation in _operations(schema):
        codes = set(operation["responses"])
        assert "401" in codes, (path, method)
        if "{" in path:
            assert "404" in codes, (path, method)
        if method in ("post", "put", "patch"):
            assert "413" in codes, (path, method)
        if "requestBody" in operation:
            assert {"400", "415"} <= codes, (path, method)
    checkin = schema["paths"]["/checkin/v1/api/guest"]["post"]["responses"]["401"]
    assert "Ocp-Apim-Subscription-Key" in checkin["description"]


def test_every_operation_takes_a_request_id_and_every_response_answers_it(schema):
    for path, method, operation in _operations(schema):
        [taken] = [p for p in operation["parameters"] if p["name"] == "X-Request-Id"]
        assert (taken["in"], taken["required"]) == ("header", False), (path, method)
        for code, response in operation["responses"].items():
            assert "X-Request-Id" in response.get("headers", {}), (path, method, code)


def test_the_main_sends_show_the_spec_documents_examples(schema):
    for path in ["/comms/v1/api/comms/send", "/v1/send/{event}", "/api/v1/communications/send",
                 "/checkin/v1/api/guest", "/v1/events"]:
        examples = schema["paths"][path]["post"]["requestBody"]["content"][
            "application/json"]["examples"]
        assert examples, path
    rejected = schema["paths"]["/comms/v1/api/comms/send"]["post"]["responses"]["422"]
    example = next(iter(rejected["content"]["application/json"]["examples"].values()))
    assert example["value"]["failureType"] == "bounced"


def test_a_partial_spec_004_send_is_documented_as_a_caller_can_act_on_it(schema):
    """200 with what was queued and each refused part (channel, recipient, retryable); the
    400 only when nothing was queued: a caller retrying on `success: false` never resends."""
    result = schema["components"]["schemas"]["V004SendResult"]
    assert "never sends anything twice" in result["properties"]["success"]["description"]
    error = _resolve(schema, result["properties"]["errors"]["items"])
    assert {"code", "message", "channel", "recipient", "retryable"} <= set(error["properties"])
    examples = schema["paths"]["/v1/send/{event}"]["post"]["responses"]["200"]["content"][
        "application/json"]["examples"]
    partly = next(e["value"] for e in examples.values() if e.get("summary") == "Partly queued")
    assert partly["success"] is True and partly["errors"][0]["retryable"] is False


def test_every_error_answer_has_its_familys_body(schema):
    """An error documented with a description only leaves a generated client's ``parsed``
    None (the domain endpoints' 404 and 502 were): every error answer names its body."""
    for path, method, operation in _operations(schema):
        for code, response in operation["responses"].items():
            if int(code) >= 400:
                assert response.get("content"), (path, method, code)
    sends = {("/checkin/v1/api/guest", "403"), ("/checkin/v1/api/guest", "404"),
             ("/comms/v1/api/comms/send", "403"), ("/comms/v1/api/comms/send", "404"),
             ("/v1/Email/", "403")}
    for path, code in sends:
        assert code in schema["paths"][path]["post"]["responses"], (path, code)
