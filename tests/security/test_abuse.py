"""Abuse (issue 15, items 10 and 11): the brute-force guard never refuses a valid key, reads
the client address only through trusted proxies and shares its counters through Redis; a
send over quota is refused before it writes anything."""

import itertools
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from django.conf import settings as django_settings
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from api.guard import client_address
from contacts.models import Contact

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 20
_RUN = os.getpid() % 250
_SEQ = itertools.count(1)
EVENTS = "/checkin/v1/api/event"


def _redis_url() -> str:
    """The broker's Redis when it is one (each session its own database), else CI's db 14."""
    broker = os.environ.get("CELERY_BROKER_URL", "")
    return broker if broker.startswith("redis://") else "redis://127.0.0.1:6379/14"


@pytest.fixture
def address(settings) -> str:
    """A client address no earlier test (nor an earlier run, in Redis) has failed from."""
    settings.HERALD_AUTH_FAILURE_LIMIT = LIMIT
    settings.HERALD_AUTH_FAILURE_WINDOW_SECONDS = 60
    return f"192.0.{_RUN}.{next(_SEQ)}"


def _call(path: str, address: str, key: str, sub: str | None = None, **meta: str):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}", **meta}
    if sub is not None:
        headers["HTTP_OCP_APIM_SUBSCRIPTION_KEY"] = sub
    return APIClient().get(path, REMOTE_ADDR=address, **headers)


def _fail(address: str, n: int, **meta: str) -> int:
    return _call("/v1/webhooks", address, f"live_wrong{address}_{n}", **meta).status_code


# --- item 10: the brute-force guard -------------------------------------------------------

def test_a_valid_key_is_served_at_an_address_that_failed_many_times(keys, address):
    assert [_fail(address, n) for n in range(LIMIT)] == [401] * LIMIT
    for n in range(LIMIT, LIMIT + 5):  # the address is over its limit: failures get 429
        refused = APIClient().get("/v1/webhooks", REMOTE_ADDR=address,
                                  HTTP_AUTHORIZATION=f"Bearer live_wrong{address}_{n}")
        assert refused.status_code == 429 and refused.json()["code"] == "RATE_LIMITED"
        assert 0 < int(refused["Retry-After"]) <= 60
    # Another client behind the same address, with its valid keys, in every family.
    assert _call("/v1/webhooks", address, keys.live_key).status_code == 200
    assert _call(EVENTS, address, keys.live_key, keys.subscription_key).status_code == 200
    assert _call(EVENTS, address, keys.test_key, keys.subscription_key).status_code == 200


def test_one_key_failing_from_many_addresses_is_limited_without_blocking_them(keys, address):
    """A stale worker's revoked key behind a proxy is counted as a key, wherever it comes
    from; the addresses it used stay open to other keys' first failures."""
    stale = f"live_revoked{address}"
    addresses = [f"{address}.{n}" for n in range(LIMIT + 1)]
    codes = [_call("/v1/webhooks", a, stale).status_code for a in addresses]
    assert codes == [401] * LIMIT + [429]
    assert "with this key" in _call("/v1/webhooks", addresses[0], stale).json()["error"]
    assert _fail(addresses[0], 0) == 401
    assert _call("/v1/webhooks", addresses[0], keys.live_key).status_code == 200


def test_guessing_the_subscription_key_of_a_known_bearer_key_is_limited(keys, address):
    other = f"{address}.9"
    for n in range(LIMIT):
        assert _call(EVENTS, f"{other}{n}", keys.live_key, f"sub_guess{n}").status_code == 401
    assert _call(EVENTS, other, keys.live_key, "sub_guess").status_code == 429
    # The owner, with the whole valid pair, is served.
    assert _call(EVENTS, address, keys.live_key, keys.subscription_key).status_code == 200


def test_a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(keys, address, settings):
    settings.HERALD_TRUSTED_PROXIES = ["10.0.0.0/8"]
    codes = [_fail(address, n, HTTP_X_FORWARDED_FOR=f"198.18.0.{n}") for n in range(LIMIT + 1)]
    assert codes == [401] * LIMIT + [429]  # counted on the peer, whatever the header says


def test_behind_a_trusted_proxy_each_forwarded_client_counts_alone(keys, address, settings):
    settings.HERALD_TRUSTED_PROXIES = ["10.0.0.0/8", "fd00::/8"]
    proxy = {"address": "10.1.2.3"}
    spoofer = {"HTTP_X_FORWARDED_FOR": f"1.1.1.1, {address}, 10.9.9.9"}  # client, lb, proxy
    codes = [_fail(proxy["address"], n, **spoofer) for n in range(LIMIT + 1)]
    assert codes == [401] * LIMIT + [429]
    # Another client behind the same proxies is not the attacker, and the proxy itself is
    # not blocked: the guessing client was counted on its own address.
    bystander = {"HTTP_X_FORWARDED_FOR": f"{address}9, 10.9.9.9"}
    assert _fail(proxy["address"], 99, **bystander) == 401
    # The client-written left part of the header is not trusted: a new spoofed entry there
    # does not reset the count.
    respoofed = {"HTTP_X_FORWARDED_FOR": f"2.2.2.2, {address}, 10.9.9.9"}
    assert _fail(proxy["address"], 100, **respoofed) == 429


@pytest.mark.parametrize(("peer", "forwarded", "client"), [
    ("203.0.113.5", "1.2.3.4", "203.0.113.5"),  # untrusted peer: its header is ignored
    ("10.0.0.1", "1.2.3.4", "1.2.3.4"),
    ("10.0.0.1", "1.2.3.4, 10.0.0.7", "1.2.3.4"),  # trusted hops are skipped from the right
    ("10.0.0.1", "9.9.9.9, 1.2.3.4", "1.2.3.4"),  # left of the first untrusted: client-written
    ("10.0.0.1", "", "10.0.0.1"),
    ("10.0.0.1", "10.0.0.2, 10.0.0.3", "10.0.0.1"),  # all ours: the request started inside
    ("::ffff:10.0.0.1", "1.2.3.4", "::ffff:10.0.0.1"),
    ("fd00::1", "2001:db8::7", "2001:db8::7"),
])
def test_client_address(settings, peer, forwarded, client):
    settings.HERALD_TRUSTED_PROXIES = ["10.0.0.0/8", "fd00::/8"]
    request = RequestFactory().get("/", REMOTE_ADDR=peer, HTTP_X_FORWARDED_FOR=forwarded)
    assert client_address(request) == client


def test_failures_counted_by_another_process_are_seen_here(keys, address, settings):
    """The production shape: several web processes, one Redis (the broker's by default)."""
    url = _redis_url()
    try:
        redis.Redis.from_url(url, socket_timeout=1).ping()
    except redis.RedisError:
        pytest.skip(f"no Redis at {url}")
    settings.HERALD_RATE_LIMIT_REDIS_URL = url
    script = (
        "import django; django.setup()\n"
        "from django.test import RequestFactory\n"
        "from api.guard import auth_failure_record\n"
        "for n in range(int(sys.argv[2])):\n"
        "    request = RequestFactory().get('/', REMOTE_ADDR=sys.argv[1],\n"
        "                                   HTTP_AUTHORIZATION=f'Bearer live_other{n}')\n"
        "    auth_failure_record(request)\n")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings",
           "HERALD_RATE_LIMIT_REDIS_URL": url, "HERALD_AUTH_FAILURE_LIMIT": str(LIMIT)}
    subprocess.run([sys.executable, "-c", "import sys\n" + script, address, str(LIMIT)],
                   cwd=ROOT, env=env, check=True, timeout=60)
    assert _fail(address, 0) == 429  # this process's first failure from that address
    assert _call("/v1/webhooks", address, keys.live_key).status_code == 200
    stored = redis.Redis.from_url(url).keys(f"herald*authfail:address:{address}")
    assert len(stored) == 1


def test_the_production_settings_count_in_the_brokers_redis():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings",
           "CELERY_BROKER_URL": "redis://redis.internal:6379/3"}
    env.pop("HERALD_RATE_LIMIT_REDIS_URL", None)
    out = subprocess.run(
        [sys.executable, "-c", "from django.conf import settings; "
         "print(settings.HERALD_RATE_LIMIT_REDIS_URL)"],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "redis://redis.internal:6379/3"
    assert django_settings.HERALD_TRUSTED_PROXIES == []  # nobody is trusted by default


# --- item 11: quotas before any write -----------------------------------------------------

PING = {"identifier": "ping", "channels": ["email"],
        "templates": [{"channel": "email", "subject": "Ping", "body": "Hi {{name | there}}"}]}


@pytest.fixture
def v4(keys, django_capture_on_commit_callbacks):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {keys.live_key}")

    def post(path, body):
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(path, body, format="json")

    assert post("/v1/events", PING).status_code == 201
    return post


def _writes(queries) -> list[str]:
    verbs = ("INSERT", "UPDATE", "DELETE")
    return [q["sql"] for q in queries.captured_queries
            if q["sql"].lstrip().upper().startswith(verbs) or "FOR UPDATE" in q["sql"].upper()]


@pytest.mark.parametrize("shape", ["strings", "objects"])
def test_a_send_over_quota_is_refused_before_any_write(v4, settings, shape):
    settings.HERALD_DAILY_QUOTA_LIVE = 5
    assert v4("/v1/send/ping", {"to": [f"u{n}@example.com" for n in range(5)]}
              ).status_code == 200
    to = [f"late{n}@example.com" for n in range(1000)]
    if shape == "objects":
        to = [{"email": address, "name": "Late"} for address in to]
    with CaptureQueriesContext(connection) as queries:
        started = time.monotonic()
        refused = v4("/v1/send/ping", {"to": to})
        took = time.monotonic() - started
    assert refused.status_code == 429, refused.content
    assert refused.json()["code"] == "RATE_LIMITED" and int(refused["Retry-After"]) > 0
    assert _writes(queries) == []
    assert not Contact.objects.filter(email__startswith="late").exists()
    assert took < 1.0, took


@pytest.mark.parametrize("shape", ["strings", "objects"])
def test_a_send_larger_than_what_is_left_is_refused_before_any_write(v4, settings, shape):
    settings.HERALD_DAILY_QUOTA_LIVE = 30
    assert v4("/v1/send/ping", {"to": ["a@example.com"]}).status_code == 200
    to = [f"b{n}@example.com" for n in range(30)]
    if shape == "objects":  # an email as the only identifier: one contact each
        to = [{"email": address, "name": "B", "tier": "gold"} for address in to]
    with CaptureQueriesContext(connection) as queries:
        refused = v4("/v1/send/ping", {"to": to})
    assert refused.status_code == 429 and _writes(queries) == []
    # What fits is still sent, duplicates counted once.
    fits = v4("/v1/send/ping", {"to": [f"c{n % 29}@example.com" for n in range(40)]})
    assert fits.status_code == 200, fits.content
    assert len(fits.json()["deliveries"]) == 29


def test_objects_that_could_move_an_address_are_counted_after_the_upserts(v4, settings):
    """An email beside another identifier may move a contact's address, so only one delivery
    is certain before the contacts are read: the exact count still refuses the send, and the
    transaction leaves no contact behind."""
    settings.HERALD_DAILY_QUOTA_LIVE = 10
    to = [{"email": f"m{n}@example.com", "externalId": f"m{n}"} for n in range(11)]
    refused = v4("/v1/send/ping", {"to": to})
    assert refused.status_code == 429, refused.content
    assert not Contact.objects.filter(external_id__startswith="m").exists()
    assert v4("/v1/send/ping", {"to": to[:10]}).status_code == 200


@pytest.mark.parametrize(("path", "shape"), [
    ("/v1/Brand/", {"Error"}),  # spec 003
    ("/api/v1/communications/inapp?userId=u", {"type", "title", "status", "detail"}),  # 002
])
def test_every_family_answers_the_guards_429_in_its_shape(keys, address, path, shape):
    for n in range(LIMIT):
        assert _call(path, address, f"live_wrong{address}_{n}").status_code == 401
    refused = _call(path, address, f"live_wrong{address}_{LIMIT}")
    assert refused.status_code == 429 and shape <= set(refused.json()), refused.content
    assert int(refused["Retry-After"]) > 0
    assert _call(path, address, keys.admin_key).status_code not in (401, 429)  # served
