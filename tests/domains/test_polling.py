"""The beat-driven poller (backoff, give-up, first success), Herald's own DNS check per
record against a local DNS server, and the sender that routing uses."""

from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from domains import services, tasks
from domains.models import Brand, SenderDomain
from domains.selectors import sender_for
from tests.fakes.dns_server import local_dns_fixture, local_dns_server_fixture  # noqa: F401
from tests.fakes.sendgrid_api import FakeSendGrid

URL = "/comms/v1/api/comms/domain"
pytestmark = pytest.mark.usefixtures("local_dns")


@pytest.fixture
def sendgrid(settings) -> Iterator[FakeSendGrid]:
    with FakeSendGrid(api_key="SG.poll") as fake:
        settings.HERALD_DOMAIN_PROVIDER = "sendgrid"
        settings.SENDGRID_API_KEY = fake.api_key
        settings.SENDGRID_API_HOST = fake.url
        settings.HERALD_DOMAIN_POLL_BASE_SECONDS = 10
        settings.HERALD_DOMAIN_POLL_MAX_SECONDS = 35
        settings.HERALD_DOMAIN_POLL_GIVE_UP_HOURS = 72
        yield fake


def create(api, domain: str = "mail.example.com") -> SenderDomain:
    assert api.post(URL, {"domain": domain}).status_code == 200
    return SenderDomain.objects.get(domain=domain)


def poll(django_capture_on_commit_callbacks, *, at) -> int:
    with django_capture_on_commit_callbacks(execute=True):
        return services.sender_domains_poll(now=at)


def validations(fake: FakeSendGrid) -> int:
    return sum(path.endswith("/validate") for _, path in fake.domain_requests)


def test_the_poller_backs_off_then_verifies_enables_and_records(
        api, sendgrid, django_capture_on_commit_callbacks):
    start = timezone.now()
    row = create(api)
    assert start + timedelta(seconds=8) <= row.next_check_at <= timezone.now() + timedelta(
        seconds=10)
    assert row.give_up_at >= start + timedelta(hours=72)

    assert poll(django_capture_on_commit_callbacks, at=start) == 0  # not due yet
    assert validations(sendgrid) == 0

    delays = []
    for n in range(1, 4):
        before = timezone.now()
        assert poll(django_capture_on_commit_callbacks, at=start + timedelta(hours=n)) == 1
        row.refresh_from_db()
        assert row.check_attempts == n and not row.verified
        delays.append((row.next_check_at - before).total_seconds())
        assert "Not verified by the provider yet" in row.last_result
    # 10 s doubling (20, 40→capped at 35), each minus up to 20 % jitter; measured from a
    # moment before the poll's own clock, so up to a second over (35.0006 s was seen).
    assert 16 - 1 <= delays[0] <= 20 + 1 and 28 - 1 <= delays[1] <= 35 + 1
    assert 28 - 1 <= delays[2] <= 35 + 1
    assert validations(sendgrid) == 3

    sendgrid.set_domain_valid("mail.example.com")
    assert poll(django_capture_on_commit_callbacks, at=start + timedelta(hours=5)) == 1
    row.refresh_from_db()
    assert row.verified and row.enabled and row.verified_at and row.next_check_at is None
    assert [e.name for e in row.events.all()] == ["created", "verified", "enabled"]
    assert api.get(URL).json()["verified"] is True

    assert poll(django_capture_on_commit_callbacks, at=start + timedelta(days=30)) == 0
    assert validations(sendgrid) == 4


def test_the_poller_gives_up_and_validate_now_restarts_it(
        api, sendgrid, settings, django_capture_on_commit_callbacks):
    settings.HERALD_DOMAIN_POLL_GIVE_UP_HOURS = 0
    row = create(api)

    assert poll(django_capture_on_commit_callbacks, at=timezone.now() + timedelta(hours=1)) == 1
    row.refresh_from_db()
    assert row.next_check_at is None and row.check_attempts == 1
    assert row.last_result.startswith("Gave up after 1 checks.")
    assert row.events.last().name == "gave_up"

    assert poll(django_capture_on_commit_callbacks, at=timezone.now() + timedelta(days=9)) == 0
    assert validations(sendgrid) == 1

    settings.HERALD_DOMAIN_POLL_GIVE_UP_HOURS = 72
    assert api.post(f"{URL}/validate").json()["verified"] is False
    row.refresh_from_db()
    assert row.next_check_at is not None and row.check_attempts == 0
    assert row.give_up_at > timezone.now() + timedelta(hours=71)


def test_a_provider_outage_during_polling_only_reschedules(
        api, sendgrid, django_capture_on_commit_callbacks):
    row = create(api)
    sendgrid.fail_next_domain(1, 503, {"errors": [{"message": "maintenance"}]})

    assert poll(django_capture_on_commit_callbacks, at=timezone.now() + timedelta(hours=1)) == 1

    row.refresh_from_db()
    assert row.check_attempts == 1 and row.next_check_at > timezone.now()
    assert "SendGrid 503" in row.last_result and not row.verified


def test_the_beat_task_is_scheduled_and_checks_due_domains(api, sendgrid, settings,
                                                           django_capture_on_commit_callbacks):
    entry = django_settings.CELERY_BEAT_SCHEDULE["domains.sender_domains_poll"]
    assert entry["task"] == tasks.sender_domains_poll.name == "domains.sender_domains_poll"
    settings.HERALD_DOMAIN_POLL_BASE_SECONDS = 0  # due as soon as created
    create(api)
    sendgrid.set_domain_valid("mail.example.com")

    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.sender_domains_poll.delay().get() == 1

    assert api.get(URL).json()["enabled"] is True


def test_a_claimed_domain_is_not_claimed_twice(api, sendgrid):
    create(api)
    later = timezone.now() + timedelta(hours=1)
    # Outside on-commit capture: the checks are not run, so both polls see the same rows.
    assert services.sender_domains_poll(now=later) == 1
    assert services.sender_domains_poll(now=later) == 0
    assert services.sender_domains_poll(
        now=later + timedelta(seconds=django_settings.HERALD_DOMAIN_POLL_LEASE_SECONDS + 1)) == 1


# --- Herald's own DNS check ----------------------------------------------------------------

def test_dns_check_per_record_against_the_local_server(api, sendgrid, local_dns):
    row = create(api)
    first, second, third = row.dns_records
    local_dns.add(first["host"], "CNAME", first["data"])
    local_dns.add(second["host"], "CNAME", "something.else.example")
    local_dns.add(third["host"], "TXT", "not a cname")

    api.post(f"{URL}/validate")

    row.refresh_from_db()
    checks = {c["host"]: c for c in row.dns_checks}
    assert checks[first["host"]]["found"] is True
    assert checks[first["host"]]["seen"] == [first["data"]]
    assert checks[second["host"]]["found"] is False
    assert checks[second["host"]]["seen"] == ["something.else.example"]
    assert checks[third["host"]]["found"] is False
    assert "no CNAME record" in checks[third["host"]]["error"]
    assert row.dns_checked_at is not None
    assert f"Not found in the DNS: {second['host']}, {third['host']}." in row.last_result


def test_dns_check_reports_missing_names(api, sendgrid):
    row = create(api)
    api.post(f"{URL}/validate")
    row.refresh_from_db()
    assert [c["found"] for c in row.dns_checks] == [False, False, False]
    assert all("NXDOMAIN" in c["error"] for c in row.dns_checks)


def test_an_unreachable_resolver_is_reported_not_raised(api, sendgrid, settings):
    settings.HERALD_DOMAIN_DNS_NAMESERVERS = ["127.0.0.1"]
    settings.HERALD_DOMAIN_DNS_PORT = 9  # nobody answers
    settings.HERALD_DOMAIN_DNS_TIMEOUT_SECONDS = 0.3
    row = create(api)
    assert api.post(f"{URL}/validate").status_code == 200
    row.refresh_from_db()
    assert all(not c["found"] and "did not answer" in c["error"] for c in row.dns_checks)


# --- routing ---------------------------------------------------------------------------------

def test_sender_for_follows_verification_enablement_and_the_default_brand(api, other_api,
                                                                          sendgrid):
    account = api.keys.account
    assert sender_for(account_id=account.id) is None
    row = create(api)
    assert sender_for(account_id=account.id) is None  # not verified yet

    sendgrid.set_domain_valid("mail.example.com")
    api.post(f"{URL}/validate")
    assert sender_for(account_id=account.id) == ("tickets@mail.example.com", "Acme Events")
    assert sender_for(account_id=other_api.keys.account.id) is None

    brand = services.brand_save(brand=Brand(account=account, name="Gala",
                                            from_name="Spring Gala",
                                            from_email="gala@Mail.Example.com", is_default=True))
    assert sender_for(account_id=account.id) == ("gala@Mail.Example.com", "Spring Gala")
    assert Brand.objects.filter(account=account, is_default=True).get() == brand

    services.brand_save(brand=Brand(account=account, name="Elsewhere", from_name="X",
                                    from_email="x@elsewhere.example", is_default=True))
    assert sender_for(account_id=account.id) is None  # not at the verified domain

    services.sender_domain_deactivate(sender_domain=row)
    services.brand_save(brand=brand)  # the domain's brand is the default again
    assert sender_for(account_id=account.id) is None
    services.sender_domain_activate(sender_domain=row)
    assert sender_for(account_id=account.id) == ("gala@Mail.Example.com", "Spring Gala")


def test_the_poller_verification_emits_a_signed_domain_verified_webhook(
        api, sendgrid, settings, django_capture_on_commit_callbacks):
    from tests.fakes.webhook_receiver import WebhookReceiver
    from webhooks.services import endpoint_create

    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = True
    with WebhookReceiver() as receiver:
        _, secret = endpoint_create(account=api.keys.account, url=receiver.url + "/hook")
        receiver.secret = secret
        row = create(api)
        sendgrid.set_domain_valid("mail.example.com")
        poll(django_capture_on_commit_callbacks, at=timezone.now() + timedelta(hours=1))
        row.refresh_from_db()
        assert row.verified and row.enabled
        [hook] = [r for r in receiver.verified if r.payload["type"] == "domain.verified"]
        assert hook.payload["data"]["domain"] == "mail.example.com"
        assert hook.payload["data"]["verified"] is True
