"""Hostile templates: nesting deeper than the parser goes is a 400 on every path that saves a
template (issue 15, item 7); no operation the sandbox exposes may grow the process by more than
a few tens of MB or run past its time budget (item 6)."""

from typing import Any

import pytest

from tests.test_notifications_api import ORDER, V004

DEEP = {
    "brackets": "{{ " + "(" * 300 + "firstName" + ")" * 300 + " }}",
    "blocks": "{% if firstName %}" * 300 + "x" + "{% endif %}" * 300,
    "loops": "{% for i in [1] %}" * 30 + "x" + "{% endfor %}" * 30,
    "operators": "{{ 1" + " + 1" * 300 + " }}",
    "filters": "{{ firstName" + "|trim" * 3000 + " }}",
}


@pytest.fixture
def v4(keys, django_capture_on_commit_callbacks) -> V004:
    return V004(keys.live_key, django_capture_on_commit_callbacks)


@pytest.mark.parametrize("kind", list(DEEP))
def test_a_deeply_nested_template_is_a_400_on_the_template_api(api, kind):
    response = api.post("/comms/v1/api/comms/template",
                        {"name": "Deep", "subject": "Hi", "htmlBody": DEEP[kind]})
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "template_syntax_error"
    assert "nested too deeply" in body["message"], body


@pytest.mark.parametrize("kind", list(DEEP))
def test_a_deeply_nested_template_is_a_400_on_events(v4, kind):
    email = {**ORDER["templates"][0], "body": DEEP[kind]}
    response = v4.post("/v1/events", {**ORDER, "templates": [email, ORDER["templates"][2]]})
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "VALIDATION_ERROR", body
    assert "templates[0].body" in body["error"] and "nested too deeply" in body["error"], body


@pytest.mark.parametrize("kind", list(DEEP))
def test_a_deeply_nested_template_is_a_400_on_brands(api, kind):
    response = api.post("/v1/Brand/", {
        "Name": "Deep Co", "FromEmail": "hello@deep.example",
        "Templates": {"token": {"Subject": "Hi", "HtmlBody": DEEP[kind]}}})
    assert response.status_code == 400, response.content
    assert "nested too deeply" in response.json()["Error"], response.json()


def test_nesting_within_the_limits_still_saves(api):
    fine: dict[str, Any] = {
        "name": "Nested", "subject": "Hi",
        "htmlBody": "{{ " + "(" * 30 + "firstName" + ")" * 30 + " }}"
                    + "{% if firstName %}" * 30 + "x" + "{% endif %}" * 30}
    assert api.post("/comms/v1/api/comms/template", fine).status_code == 201
