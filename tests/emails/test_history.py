"""Spec 003's history: every field from the delivery's lifecycle, every filter, the cursor."""

import time
import uuid

import pytest

from tests.emails.test_api import BRAND, brand_id, token_message


def history(api, **params) -> dict:
    response = api.client.get("/v1/Email/", params)
    assert response.status_code == 200, response.content
    return response.json()


def test_history_follows_the_sandbox_lifecycle(api, sandbox_api, keys,
                                               django_capture_on_commit_callbacks):
    brand = brand_id(api)  # configuration: a live key
    group = str(uuid.uuid4())
    messages = [
        {"To": "ok@example.com", "Type": "tokenAndGroup", "BrandId": brand, "Token": "abcde",
         "NumPhotos": 10, "GroupId": group},
        token_message(brand, to="bounce@example.com"),
        token_message(brand, to="spam@example.com", NumPhotos=-1),
    ]
    before = int(time.time())
    with django_capture_on_commit_callbacks(execute=False) as sends:
        response = sandbox_api.client.post("/v1/Email/", {"Messages": messages}, format="json")
    ok, bounce, spam = (r["MessageId"] for r in response.json()["Results"])

    queued = history(sandbox_api)["Emails"]
    assert [e["MessageId"] for e in queued] == [spam, bounce, ok]  # newest first
    assert {e["State"] for e in queued} == {"sent"}
    assert history(sandbox_api, State="bounced")["Emails"] == []

    for send in sends:  # the workers run: sandbox sends and its scripted events
        send()

    emails = {e["MessageId"]: e for e in history(sandbox_api)["Emails"]}
    delivered = emails[ok]
    assert delivered == {
        "Email": "ok@example.com", "Type": "tokenAndGroup", "MessageId": ok,
        "SentAt": delivered["SentAt"], "LastUpdated": delivered["LastUpdated"],
        "State": "delivered", "BrandId": brand, "OwnerId": str(keys.account.id),
        "MsgDetails": {"To": "ok@example.com", "Type": "tokenAndGroup", "BrandId": brand,
                       "Token": "abcde", "NumPhotos": 10, "GroupId": group},
        "ComplaintType": "", "BounceType": "", "BounceSubType": "", "BounceDetails": "",
        "DeliveredDate": delivered["DeliveredDate"],
    }
    assert before <= delivered["SentAt"] <= delivered["DeliveredDate"]
    assert delivered["LastUpdated"] >= delivered["DeliveredDate"]

    bounced = history(sandbox_api, State="bounced")["Emails"]
    assert [e["MessageId"] for e in bounced] == [bounce]
    assert bounced[0]["BounceType"] == "Permanent"
    assert bounced[0]["BounceSubType"] == "General"
    assert bounced[0]["BounceDetails"] == "550 5.1.1 No such user"
    assert bounced[0]["DeliveredDate"] is None and bounced[0]["ComplaintType"] == ""

    complaint = history(sandbox_api, State="complaint")["Emails"]
    assert [e["MessageId"] for e in complaint] == [spam]
    assert complaint[0]["ComplaintType"] == "abuse"
    assert complaint[0]["DeliveredDate"] is not None and complaint[0]["BounceType"] == ""
    assert complaint[0]["MsgDetails"]["NumPhotos"] == -1
    assert [e["MessageId"] for e in history(sandbox_api, State="delivered")["Emails"]] == [ok]
    assert history(sandbox_api, State="sent")["Emails"] == []


def test_a_suppressed_address_is_bounced_without_sending(api, sandbox_api):
    brand = brand_id(api)  # configuration: a live key
    sandbox_api.post("/v1/Email/", {"Messages": [token_message(brand, to="bounce@example.com")]})
    again = sandbox_api.post("/v1/Email/", {"Messages": [
        token_message(brand, to="Bounce@Example.com")]}).json()["Results"][0]["MessageId"]
    latest = history(sandbox_api, State="bounced")["Emails"][0]
    assert latest["MessageId"] == again
    assert (latest["BounceType"], latest["BounceSubType"]) == (
        "Permanent", "OnAccountSuppressionList")
    assert "suppressed" in latest["BounceDetails"]


def test_filters(api, other_api):
    photo = brand_id(api)
    other = brand_id(api, Name="Other brand")
    ids = [r["MessageId"] for r in api.post("/v1/Email/", {"Messages": [
        token_message(photo, to="Jane@Example.com"),
        token_message(other, to="max@example.com"),
        token_message(photo, to="max@example.com"),
    ]}).json()["Results"]]
    brand_only = history(api, BrandId=photo)["Emails"]
    assert [e["MessageId"] for e in brand_only] == [ids[2], ids[0]]
    # Email: a direct match (letter case aside) that ignores the other filters.
    by_address = history(api, Email="max@example.com", BrandId=photo, State="bounced")
    assert [e["MessageId"] for e in by_address["Emails"]] == [ids[2], ids[1]]
    assert [e["MessageId"] for e in history(api, Email="jane@example.com")["Emails"]] == [ids[0]]
    assert history(api, Email="max@example")["Emails"] == []
    # After: nothing last updated after it.
    newest = history(api)["Emails"][0]
    assert len(history(api, After=newest["LastUpdated"])["Emails"]) == 3
    assert history(api, After=newest["LastUpdated"] - 1, BrandId=other)["Emails"] == []
    assert history(api, After=0)["Emails"] == []
    # Another account sees none of it, and its BrandId is unknown here.
    assert history(other_api)["Emails"] == []
    response = other_api.client.get("/v1/Email/", {"BrandId": photo})
    assert response.status_code == 404 and response.json() == {"Error": "No brand with this id."}


@pytest.mark.parametrize("params,needle", [
    ({"Colour": "red"}, "Unknown query parameter(s): Colour"),
    ({"State": "opened"}, "State"),
    ({"After": "yesterday"}, "After"),
    ({"After": "-5"}, "After"),
    ({"After": "99999999999999"}, "After"),
    ({"BrandId": "nope"}, "BrandId"),
    ({"Limit": "0"}, "Limit"),
    ({"Next": "garbage"}, "Next is not valid"),
])
def test_bad_query_is_a_clear_error(api, params, needle):
    response = api.client.get("/v1/Email/", params)
    assert response.status_code == 400, response.content
    assert set(response.json()) == {"Error"} and needle in response.json()["Error"]


def test_repeated_parameter(api):
    response = api.client.get("/v1/Email/?State=sent&State=bounced")
    assert response.status_code == 400
    assert response.json() == {"Error": "Given more than once: State."}


def test_cursor_is_signed_bound_to_its_account_and_its_filters(api, other_api):
    brand = brand_id(api)
    other_api.post("/v1/Brand/", BRAND)
    api.post("/v1/Email/", {"Messages": [token_message(brand)] * 3})
    cursor = history(api, Limit=1, State="sent")["Next"]
    assert cursor
    tampered = cursor[:-3] + ("AAA" if not cursor.endswith("AAA") else "BBB")
    for client, params in ((api, {"Next": tampered}), (api, {"Next": cursor[5:]}),
                           (other_api, {"Next": cursor}),
                           (api, {"Next": cursor, "State": "bounced"})):
        response = client.client.get("/v1/Email/", params)
        assert response.status_code == 400, response.content
        assert set(response.json()) == {"Error"}
    # The same filters along with Next, or none: the next page of the same query.
    second = history(api, Next=cursor, State="sent", Limit=1)
    assert history(api, Next=cursor, Limit=1) == second
    third = history(api, Next=second["Next"], Limit=5)
    assert len(third["Emails"]) == 1 and third["Next"] is None


def test_a_cursor_is_the_same_for_the_same_page_and_one_issued_with_a_timestamp_still_pages():
    """No issue time in the signature (nothing checks a cursor's age): the same page gives the
    same cursor whenever it is asked for; cursors issued before, by ``signing.dumps``, decode
    to the same position."""
    import uuid
    from datetime import UTC, datetime

    from django.core import signing

    from emails.cursor import SALT, cursor_decode, cursor_encode
    from emails.selectors import HistoryFilters, Position

    account = uuid.uuid4()
    position = Position(datetime(2026, 11, 28, 12, 0, 0, 123456, tzinfo=UTC), uuid.uuid4())
    filters = HistoryFilters(state="sent")
    token = cursor_encode(account_id=account, filters=filters, position=position)
    assert cursor_encode(account_id=account, filters=filters, position=position) == token
    old = signing.dumps(signing.Signer(salt=SALT).unsign_object(token), salt=SALT,
                        compress=True)
    assert cursor_decode(account_id=account, token=old) == (filters, position)
    assert cursor_decode(account_id=account, token=token) == (filters, position)
