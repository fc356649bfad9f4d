"""One timestamp format everywhere (``common.times.iso``: ``2026-04-29T20:43:55Z``): every
timestamp of the ``domain.verified`` webhook, of the domain API's answers and of every other
webhook payload of the catalogue."""

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from common.times import iso
from domains.models import SenderDomain
from tests.domains.test_polling import URL, sendgrid  # noqa: F401 (the fixture)
from tests.fakes.dns_server import local_dns_fixture, local_dns_server_fixture  # noqa: F401
from tests.fakes.webhook_receiver import WebhookReceiver
from webhooks import catalogue
from webhooks.services import endpoint_create

pytestmark = pytest.mark.usefixtures("local_dns")
ISO_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def timestamps(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string in a JSON value that reads as a date and time, with where it is."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from timestamps(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from timestamps(item, f"{path}[{index}]")
    elif isinstance(value, str) and re.match(r"\d{4}-\d\d-\d\d[T ]\d\d:", value):
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return
        yield path, value


def test_every_timestamp_is_iso_z_in_the_webhook_and_the_answers(api, sendgrid,  # noqa: F811
                                                                  settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = True
    with WebhookReceiver() as receiver:
        _, receiver.secret = endpoint_create(account=api.keys.account,
                                             url=receiver.url + "/hook")
        answers = [api.post(URL, {"domain": "mail.example.com"})]
        sendgrid.set_domain_valid("mail.example.com")
        answers += [api.post(URL + "/validate"), api.get(URL)]
        [hook] = [r for r in receiver.verified if r.payload["type"] == "domain.verified"]
    assert all(answer.status_code == 200 for answer in answers), [a.content for a in answers]

    row = SenderDomain.objects.get(domain="mail.example.com")
    assert hook.payload["data"]["verifiedAt"] == iso(row.verified_at)
    found = dict(timestamps(hook.payload))
    assert set(found) == {".timestamp", ".data.verifiedAt"}
    for answer in answers:
        found.update(timestamps(answer.json(), answer.request["PATH_INFO"]))
    assert {where: stamp for where, stamp in found.items() if not ISO_Z.fullmatch(stamp)} == {}


def test_the_walk_finds_other_formats():
    """The check above would see an offset or fractional seconds."""
    found = dict(timestamps({"a": [{"b": "2026-04-29T20:43:55.123456+00:00"}],
                             "c": "2026-04-29T20:43:55Z", "d": "2026-04-29 not a time"}))
    assert found == {".a[0].b": "2026-04-29T20:43:55.123456+00:00",
                     ".c": "2026-04-29T20:43:55Z"}


def test_every_timestamp_of_every_catalogue_payload_is_iso_z():
    """Moments with microseconds and another offset, as a database may give them."""
    moment = datetime(2026, 4, 29, 22, 43, 55, 123456, tzinfo=timezone(timedelta(hours=2)))
    event = catalogue.Occurrence(
        name="comms.delivered", status="", reason=None, occurred_at=moment, delivery_id="d",
        attendee_id="a", attendee_event_id="e", template_id="t", recipient="x@example.com",
        correlation_id="c", channel="email", event_name="", provider_message_id="m",
        sent_at=moment, delivered_at=moment, failure_reason="", mode="live")
    payloads = [catalogue.payload_for(event, name, now=moment.astimezone(UTC))
                for name in catalogue.ALL_EVENTS if name not in catalogue.ACCOUNT_EVENTS]
    payloads.append(catalogue.test_payload(endpoint_id="w", now=moment))
    found = [stamp for payload in payloads for _, stamp in timestamps(payload)]
    assert len(found) >= 2 * len(payloads)
    assert set(found) == {"2026-04-29T20:43:55Z"}
