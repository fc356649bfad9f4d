"""Each API family declared once: one normaliser, one renderer per family, the same bodies
from a view's error and from the 404/400/500 Django answers before any view."""

import json

import pytest
from django.http import Http404
from django.test import RequestFactory
from rest_framework import exceptions

from api.authentication import ApiKeyAuthentication, HasApiKey, SubscriptionKeyAuthentication
from api.families import (
    CHECKIN,
    EMAILS,
    FAMILIES,
    MULTICHANNEL,
    NOTIFICATIONS,
    Failure,
    family_for_path,
    normalise,
)
from api.views import HeraldAPIView
from common.errors import HeraldError
from config import urls

RFC = "https://tools.ietf.org/html/rfc9110#section-15.5."
SEND_JSON = "Send the body as JSON with Content-Type: application/json."
FIELDS = exceptions.ValidationError({"email": ["Enter a valid email."], "name": ["Required."],
                                     "to": {"0": {"phone": ["Bad."]}}})


def body(family, exc):
    failure = normalise(exc)
    return failure.status, family.body(failure)


@pytest.mark.parametrize(("family", "expected"), [
    (CHECKIN, {"error": "previous_send_failed", "message": "Won't change.", "deliveryId": "x"}),
    (NOTIFICATIONS, {"error": "Won't change.", "code": "PREVIOUS_SEND_FAILED"}),
    (EMAILS, {"Error": "Won't change."}),
    (MULTICHANNEL, {"type": RFC + "21", "title": "Unprocessable Content", "status": 422,
                    "detail": "Won't change.", "deliveryId": "x"}),
])
def test_a_herald_error_in_each_familys_shape(family, expected):
    exc = HeraldError("previous_send_failed", "Won't change.", status=422, deliveryId="x")
    assert body(family, exc) == (422, expected)


def test_spec_004_codes_come_from_its_table_unless_given_in_capitals():
    assert body(NOTIFICATIONS, HeraldError("event_not_found", "No such event.", status=404)) \
        == (404, {"error": "No such event.", "code": "NOT_FOUND"})
    assert body(NOTIFICATIONS, HeraldError("INVALID_PHONE", "Bad phone.")) \
        == (400, {"error": "Bad phone.", "code": "INVALID_PHONE"})
    assert body(NOTIFICATIONS, exceptions.MethodNotAllowed("PATCH")) \
        == (405, {"error": 'Method "PATCH" not allowed.', "code": "METHOD_NOT_ALLOWED"})


@pytest.mark.parametrize(("family", "expected"), [
    (CHECKIN, {"error": "validation_error", "message": "Invalid request: email, name, to.0.phone.",
               "fields": {"email": "Enter a valid email.", "name": "Required.",
                          "to.0.phone": "Bad."}}),
    (NOTIFICATIONS, {"error": "email: Enter a valid email.; name: Required.; to.0.phone: Bad.",
                     "code": "VALIDATION_ERROR"}),
    (EMAILS, {"Error": "email: Enter a valid email. name: Required. to.0.phone: Bad."}),
    (MULTICHANNEL, {"type": RFC + "1", "title": "One or more validation errors occurred.",
                    "status": 400,
                    "detail": "email: Enter a valid email.; name: Required.; to.0.phone: Bad.",
                    "errors": {"email": ["Enter a valid email."], "name": ["Required."],
                               "to.0.phone": ["Bad."]}}),
])
def test_invalid_fields_in_each_familys_shape(family, expected):
    assert body(family, FIELDS) == (400, expected)


def test_an_error_of_the_whole_request_names_no_field():
    whole = exceptions.ValidationError({"non_field_errors": ["Give one."]})
    assert body(CHECKIN, whole) == (400, {"error": "validation_error", "message": "Give one.",
                                          "fields": {}})
    assert body(MULTICHANNEL, exceptions.ValidationError(["Just wrong."]))[1]["errors"] \
        == {"": ["Just wrong."]}


@pytest.mark.parametrize(("family", "expected"), [
    (CHECKIN, {"error": "unsupported_media_type", "message": SEND_JSON}),
    (NOTIFICATIONS, {"error": SEND_JSON, "code": "VALIDATION_ERROR"}),
    (EMAILS, {"Error": SEND_JSON}),
    # ASP.NET's problem keeps the framework's own sentence.
    (MULTICHANNEL, {"type": RFC + "16", "title": "Unsupported Media Type", "status": 415,
                    "detail": 'Unsupported media type "text/plain" in request.'}),
])
def test_a_body_that_is_not_json_in_each_familys_shape(family, expected):
    assert body(family, exceptions.UnsupportedMediaType("text/plain")) == (415, expected)


def test_not_found_is_one_sentence_and_other_api_errors_keep_their_code():
    for exc in (Http404("No such thing"), exceptions.NotFound("Gone")):
        assert body(CHECKIN, exc) == (404, {"error": "not_found", "message": "Not found."})
    gone = type("Gone", (exceptions.APIException,), {
        "status_code": 410, "default_code": "gone", "default_detail": "It went."})()
    assert body(CHECKIN, gone) == (410, {"error": "gone", "message": "It went."})
    assert body(NOTIFICATIONS, gone) == (410, {"error": "It went.", "code": "GONE"})
    assert normalise(ValueError("a bug")) is None  # a 500, not an answer


@pytest.mark.parametrize(("path", "family"), [
    ("/checkin/v1/api/guest", CHECKIN), ("/comms/v1/api/comms/send", CHECKIN),
    ("/api/v1/communications/send", MULTICHANNEL), ("/v1/Email/", EMAILS),
    ("/v1/Brand/x", EMAILS), ("/v1/events", NOTIFICATIONS), ("/v1/webhooks", NOTIFICATIONS),
    ("/v1/contacts", NOTIFICATIONS), ("/nowhere", CHECKIN), ("/callbacks/x", CHECKIN),
])
def test_a_path_belongs_to_one_family(path, family):
    assert family_for_path(path) is family
    if family is not CHECKIN or path.startswith(("/checkin/", "/comms/")):
        assert path.startswith(family.prefixes)


@pytest.mark.parametrize(("path", "content_type", "expected"), [
    ("/v1/Email/x", "application/json", {"Error": "No such endpoint."}),
    ("/v1/nope", "application/json", {"error": "No such endpoint.", "code": "NOT_FOUND"}),
    ("/api/v1/communications/x", "application/problem+json",
     {"type": RFC + "5", "title": "Not Found", "status": 404, "detail": "No such endpoint."}),
    ("/checkin/v1/api/x", "application/json",
     {"error": "not_found", "message": "No such endpoint."}),
])
def test_djangos_own_404_takes_the_paths_family_shape(path, content_type, expected):
    response = urls.handler404(RequestFactory().get(path))
    assert (response.status_code, response["Content-Type"]) == (404, content_type)
    assert json.loads(response.content) == expected


def test_djangos_500_in_each_family():
    def answer(path):
        return json.loads(urls.handler500(RequestFactory().get(path)).content)

    said = "Something went wrong on our side; it has been logged."
    assert answer("/v1/send") == {"error": said, "code": "SERVER_ERROR"}
    assert answer("/comms/v1/api/comms/send") == {"error": "internal_error", "message": said}
    assert answer("/api/v1/communications/send")["title"] == "Error"


def test_a_view_names_its_family_and_gets_its_authentication():
    class Checkin(HeraldAPIView):
        family = CHECKIN

    class Notifications(HeraldAPIView):
        family = NOTIFICATIONS

    class Inherits(Notifications):
        pass

    assert Checkin.authentication_classes == [SubscriptionKeyAuthentication]
    assert Inherits.authentication_classes == [ApiKeyAuthentication]
    assert Inherits.permission_classes == [HasApiKey]
    assert [f.name for f in FAMILIES] == ["emails", "notifications", "multichannel", "checkin"]
    assert CHECKIN.key_reused_status == 409 and NOTIFICATIONS.key_reused_status == 422
    assert Failure(404, "not_found", "x").fields is None
