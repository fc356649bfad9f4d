"""Templates over REST: sandboxed jinja2, compile errors with their line, versions."""

from comms.models import Delivery
from tests.conftest import TICKET, guest


def test_create_get_list_and_update(api):
    created = api.post("/comms/v1/api/comms/template", TICKET).json()
    assert created["version"] == 1 and created["channel"] == "email"
    assert api.get(f"/comms/v1/api/comms/template/{created['id']}").json() == created
    listed = api.get("/comms/v1/api/comms/template").json()
    assert [t["id"] for t in listed["items"]] == [created["id"]]
    updated = api.put(f"/comms/v1/api/comms/template/{created['id']}",
                      {**TICKET, "subject": "New subject"}).json()
    assert updated["version"] == 2 and updated["subject"] == "New subject"


def test_syntax_error_is_rejected_with_its_line(api):
    response = api.post("/comms/v1/api/comms/template", {
        "name": "broken", "subject": "ok", "htmlBody": "<p>line one</p>\n<p>{{ firstName </p>"})
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "template_syntax_error"
    assert "line 2" in body["message"]
    assert "htmlBody" in body["fields"]


def test_needs_a_body(api):
    response = api.post("/comms/v1/api/comms/template", {"name": "x", "subject": "s"})
    assert response.status_code == 400
    assert "htmlBody" in response.json()["fields"]


def test_unknown_tokens_render_empty_and_sandbox_blocks_internals(api, event_id):
    template = api.post("/comms/v1/api/comms/template", {
        "name": "t", "subject": "Hi {{ nope }}{{ event.nope.deeper }}",
        "textBody": "[{{ unknown.token }}][{{ range }}]"}).json()
    response = api.post("/checkin/v1/api/guest", guest(event_id, template["id"]))
    delivery = Delivery.objects.get(id=response.json()["attendeeInvitationId"])
    assert delivery.subject == "Hi"
    assert delivery.text_body == "[][]"
    refused = api.post("/comms/v1/api/comms/template", {
        "name": "t", "subject": "s", "textBody": "{{ firstName.__class__ }}"})
    assert refused.status_code == 400 and "starting with" in refused.json()["message"]


def test_update_changes_what_is_rendered_next(api, event_id, template_id):
    api.put(f"/comms/v1/api/comms/template/{template_id}",
            {**TICKET, "subject": "Updated for {{ event.name }}"})
    response = api.post("/checkin/v1/api/guest", guest(event_id, template_id))
    delivery = Delivery.objects.get(id=response.json()["attendeeInvitationId"])
    assert delivery.subject == "Updated for Spring Gala"


def test_other_accounts_template_is_404(api, other_api, template_id):
    assert other_api.get(f"/comms/v1/api/comms/template/{template_id}").status_code == 404
    put = other_api.put(f"/comms/v1/api/comms/template/{template_id}", TICKET)
    assert put.status_code == 404


def test_events_api(api, other_api):
    created = api.post("/checkin/v1/api/event", {"name": "Gala", "venue": "Hall",
                                                 "startsAt": "2026-12-01T19:00:00Z"})
    assert created.status_code == 201
    event = created.json()
    assert api.get(f"/checkin/v1/api/event/{event['id']}").json()["venue"] == "Hall"
    assert other_api.get(f"/checkin/v1/api/event/{event['id']}").status_code == 404
    assert api.get("/checkin/v1/api/event?limit=500").status_code == 400
    bad = api.post("/checkin/v1/api/event", {"name": "x", "startsAt": "2026-12-02T00:00:00Z",
                                             "endsAt": "2026-12-01T00:00:00Z"})
    assert bad.status_code == 400 and "endsAt" in bad.json()["fields"]
