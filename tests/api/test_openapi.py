"""OpenAPI served by drf-spectacular for every endpoint, with a browsable UI."""


def test_schema_lists_every_endpoint(client):
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in ["/checkin/v1/api/guest", "/checkin/v1/api/guest/{attendee_id}",
                 "/checkin/v1/api/event", "/comms/v1/api/comms/send",
                 "/comms/v1/api/comms/template", "/comms/v1/api/comms/template/{template_id}"]:
        assert path in paths
    assert "422" in paths["/comms/v1/api/comms/send"]["post"]["responses"]


def test_docs_page(client):
    assert client.get("/api/docs/").status_code == 200
