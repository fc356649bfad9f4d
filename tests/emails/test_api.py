"""Spec 003's send: brands over REST, per-message results in order, bad input refused."""

import uuid

import pytest

from comms.models import Delivery, Status
from templates.models import MessageTemplate

BRAND = {"Name": "Photo Co", "FromName": "Photo Co", "FromEmail": "hello@photo.example"}


def brand_id(api, **fields) -> str:
    response = api.post("/v1/Brand/", {**BRAND, **fields})
    assert response.status_code == 201, response.content
    return response.json()["Brand"]["BrandId"]


def token_message(brand: str, to: str = "jane@example.com", **fields) -> dict:
    return {"To": to, "Type": "token", "BrandId": brand, "Token": "abcde", "NumPhotos": 10,
            **fields}


# --- brands ---------------------------------------------------------------------------------

def test_brand_create_list_update(api, keys):
    created = api.post("/v1/Brand/", {**BRAND, "Templates": {
        "token": {"Subject": "Code {{ token }}", "TextBody": "{{ numPhotos }} photos"}}})
    assert created.status_code == 201, created.content
    brand = created.json()["Brand"]
    assert brand["OwnerId"] == str(keys.account.id)
    assert brand["Templates"]["group"] is None
    inline = MessageTemplate.objects.get(id=brand["Templates"]["token"])
    assert inline.subject == "Code {{ token }}"

    listed = api.get("/v1/Brand/").json()["Brands"]
    assert [b["BrandId"] for b in listed] == [brand["BrandId"]]

    updated = api.put(f"/v1/Brand/{brand['BrandId']}",
                      {"FromName": "Photo Company", "Templates": {"token": None}})
    assert updated.status_code == 200, updated.content
    body = updated.json()["Brand"]
    assert body["FromName"] == "Photo Company" and body["Name"] == "Photo Co"
    assert body["Templates"]["token"] is None
    assert api.get(f"/v1/Brand/{brand['BrandId']}").json()["Brand"] == body


def test_brand_template_by_id_must_be_the_accounts(api, other_api, template_id):
    mine = api.post("/v1/Brand/", {**BRAND, "Templates": {"group": template_id}})
    assert mine.json()["Brand"]["Templates"]["group"] == template_id
    theirs = other_api.post("/v1/Brand/", {**BRAND, "Templates": {"group": template_id}})
    assert theirs.status_code == 404
    assert theirs.json() == {"Error": "No template with this id."}


@pytest.mark.parametrize("body,needle", [
    ({**BRAND, "FromEmail": "not-an-address"}, "FromEmail"),
    ({**BRAND, "Colour": "red"}, "Colour"),
    ({**BRAND, "IsDefault": "yes"}, "IsDefault"),
    ({**BRAND, "Templates": {"ticket": None}}, "ticket"),
    ({**BRAND, "Templates": {"token": {"Subject": "{% if %}"}}}, "subject"),
    ({"FromEmail": "a@b.example"}, "Name"),
])
def test_brand_bad_input(api, body, needle):
    response = api.post("/v1/Brand/", body)
    assert response.status_code == 400, response.content
    assert set(response.json()) == {"Error"} and needle in response.json()["Error"]


def test_brand_name_taken_and_other_accounts_brand(api, other_api):
    brand = brand_id(api)
    assert api.post("/v1/Brand/", BRAND).status_code == 409
    for response in (other_api.get(f"/v1/Brand/{brand}"),
                     other_api.put(f"/v1/Brand/{brand}", {"Name": "Mine now"}),
                     api.get("/v1/Brand/not-a-uuid")):
        assert response.status_code == 404
        assert response.json() == {"Error": "No brand with this id."}


# --- POST /v1/Email/ ------------------------------------------------------------------------

def test_mixed_batch_answers_each_message_in_order(api, other_api):
    brand = brand_id(api)
    foreign = brand_id(other_api)
    messages = [
        token_message(brand),
        token_message(brand, to="not-an-address"),
        {"To": "a@example.com", "Type": "group", "BrandId": brand},
        {"To": "b@example.com", "Type": "tokenAndGroup", "BrandId": brand, "Token": "t",
         "GroupId": str(uuid.uuid4()), "NumPhotos": -1},
        token_message(brand, NumPhotos=-2),
        token_message(brand, NumPhotos="10"),
        token_message(brand, NumPhotos=2.5),
        token_message(foreign),
        token_message(str(uuid.uuid4())),
        {"To": "c@example.com", "Type": "newsletter", "BrandId": brand},
        {"To": "d@example.com", "Type": "tokenAndGroup", "BrandId": brand, "Token": "t"},
        {"To": "e@example.com", "Type": "group", "BrandId": brand, "GroupId": "g"},
        "not an object",
        token_message(brand, Colour="red"),
        {"To": "f@example.com", "Type": "purchase", "BrandId": brand,
         "OrderId": str(uuid.uuid4())},
    ]
    response = api.post("/v1/Email/", {"Messages": messages})
    assert response.status_code == 200, response.content
    results = response.json()["Results"]
    assert [r["Status"] for r in results] == [
        200, 400, 400, 200, 400, 400, 400, 404, 404, 400, 400, 200, 400, 400, 200]
    errors = [r.get("Error", "") for r in results]
    assert "To is not a valid email address" in errors[1]
    assert errors[2] == "GroupId is required for Type group."
    assert "NumPhotos must be an integer" in errors[4] and "NumPhotos" in errors[5]
    assert errors[7] == f"No brand with BrandId {foreign}."  # another account's: unknown
    assert errors[8].startswith("No brand with BrandId")
    assert errors[9].startswith("Type must be one of")
    assert errors[10] == "GroupId is required for Type tokenAndGroup."
    assert errors[12] == "A message must be a JSON object."
    assert errors[13] == "Unknown field(s): Colour."
    sent = [r for r in results if r["Status"] == 200]
    assert all(set(r) == {"Status", "MessageId"} for r in sent)
    assert all(set(r) == {"Status", "Error"} for r in results if r["Status"] != 200)
    deliveries = Delivery.objects.filter(id__in=[r["MessageId"] for r in sent])
    assert deliveries.count() == 4
    assert all(d.status == Status.SENT for d in deliveries)  # the outbox accepted each


def test_rendered_with_the_brand_template_and_unlimited_photos(api):
    brand = brand_id(api, Templates={"token": {
        "Subject": "{{ brand.name }}: code {{ token }}",
        "TextBody": "You get {{ numPhotos }} photos, {{ email }}."}})
    response = api.post("/v1/Email/", {"Messages": [token_message(brand, NumPhotos=-1)]})
    delivery = Delivery.objects.get(id=response.json()["Results"][0]["MessageId"])
    assert delivery.subject == "Photo Co: code abcde"
    assert delivery.text_body == "You get unlimited photos, jane@example.com."


def test_every_type_sends_with_herald_default_content(api):
    brand = brand_id(api)
    response = api.post("/v1/Email/", {"Messages": [
        token_message(brand),
        {"To": "a@example.com", "Type": "group", "BrandId": brand, "GroupId": "G-1"},
        {"To": "b@example.com", "Type": "tokenAndGroup", "BrandId": brand, "Token": "T-2",
         "GroupId": "G-2", "NumPhotos": -1},
        {"To": "c@example.com", "Type": "purchase", "BrandId": brand,
         "OrderId": "8a4b8a0e-5d6c-4d2e-9c1f-1f2e3d4c5b6a"},
    ]})
    ids = [r["MessageId"] for r in response.json()["Results"]]
    bodies = [Delivery.objects.get(id=i) for i in ids]
    assert all(d.status == Status.SENT for d in bodies)
    assert "abcde" in bodies[0].text_body and "10 photos" in bodies[0].text_body
    assert "G-1" in bodies[1].text_body
    assert "unlimited photos" in bodies[2].text_body
    assert "8a4b8a0e" in bodies[3].text_body
    assert bodies[0].subject == "Your photos from Photo Co"


@pytest.mark.parametrize("body,needle", [
    ({"Messages": []}, "Messages"),
    ({"Messages": [{}] * 1001}, "1000"),
    ({"Messages": "x"}, "Messages"),
    ({}, "Messages"),
    ({"Messages": [{}], "Extra": 1}, "Extra"),
    (["not", "an", "object"], ""),
])
def test_bad_batches_send_nothing(api, body, needle):
    response = api.post("/v1/Email/", body)
    assert response.status_code == 400, response.content
    assert set(response.json()) == {"Error"} and needle in response.json()["Error"]
    assert not Delivery.objects.exists()


def test_errors_in_the_spec_shape(api, keys):
    assert api.client.post("/v1/Email/", data="{oops",
                           content_type="application/json").json() == {
        "Error": "The request body is not valid JSON."}
    anonymous = api.client.__class__()
    response = anonymous.get("/v1/Email/")
    assert response.status_code == 401 and set(response.json()) == {"Error"}
    keys.account.verified_for_sending = False
    keys.account.save()
    brand = brand_id(api)
    response = api.post("/v1/Email/", {"Messages": [token_message(brand)]})
    assert response.status_code == 403 and "not verified" in response.json()["Error"]
    assert not Delivery.objects.exists()


def test_subscription_key_is_not_needed(keys):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {keys.live_key}")
    assert client.get("/v1/Email/").status_code == 200


def test_schema_documents_the_family(client):
    paths = client.get("/api/schema/?format=json").json()["paths"]
    assert {"post", "get"} <= set(paths["/v1/Email/"])
    assert {"post", "get"} <= set(paths["/v1/Brand/"])
    assert {"get", "put"} <= set(paths["/v1/Brand/{BrandId}"])
    params = {p["name"] for p in paths["/v1/Email/"]["get"]["parameters"]}
    assert {"BrandId", "State", "After", "Email", "Next"} <= params


def test_sent_from_the_brand_once_its_domain_is_verified(api, settings):
    from tests.fakes.sendgrid_api import FakeSendGrid

    with FakeSendGrid(api_key="SG.brand") as fake:
        settings.HERALD_EMAIL_PROVIDER = "sendgrid"
        settings.HERALD_DOMAIN_PROVIDER = "dev"
        settings.SENDGRID_API_KEY = fake.api_key
        settings.SENDGRID_API_HOST = fake.url
        brand = brand_id(api)
        api.post("/v1/Email/", {"Messages": [token_message(brand)]})
        assert fake.messages[-1].body["from"]["email"] == "tickets@herald.localhost"
        api.post("/comms/v1/api/comms/domain", {"domain": "photo.example"})
        assert api.post("/comms/v1/api/comms/domain/validate").json()["verified"]
        api.post("/v1/Email/", {"Messages": [token_message(brand)]})
        assert fake.messages[-1].body["from"] == {"email": "hello@photo.example",
                                                  "name": "Photo Co"}
