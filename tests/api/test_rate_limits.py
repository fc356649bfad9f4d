"""Rate limits per API key (requests per second) and daily delivery quotas (spec 004)."""

import logging
import time
from datetime import UTC, datetime, timedelta

import pytest
import redis
from django.urls import path
from rest_framework.response import Response
from rest_framework.test import APIClient

from api.families import NOTIFICATIONS
from api.ratelimit import delivery_quota_take
from api.views import HeraldAPIView
from common.errors import HeraldError

REDIS_URL = "redis://127.0.0.1:6379/14"
EVENTS = "/checkin/v1/api/event"


def _fresh_second() -> None:
    """Start a burst at the beginning of a second, so it all falls in one window."""
    time.sleep(1.02 - time.time() % 1)


def _bearer(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


@pytest.fixture(params=["memory", "redis"])
def store(request, settings) -> str:
    settings.HERALD_RATE_LIMIT_REDIS_URL = REDIS_URL if request.param == "redis" else ""
    return request.param


def test_live_keys_get_the_limit_then_429_with_headers(api, settings, store):
    settings.HERALD_RATE_LIMIT_LIVE = 3
    _fresh_second()
    responses = [api.get(EVENTS) for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert [r["X-RateLimit-Remaining"] for r in responses] == ["2", "1", "0", "0"]
    assert {r["X-RateLimit-Limit"] for r in responses} == {"3"}
    assert int(responses[0]["X-RateLimit-Reset"]) == int(time.time()) + 1
    refused = responses[-1]
    assert refused["Retry-After"] == "1"
    assert refused.json() == {"error": "rate_limited",
                              "message": "Rate limit of 3 requests per second exceeded."}
    time.sleep(1.02 - time.time() % 1)
    assert api.get(EVENTS).status_code == 200  # the next second is a new window


def test_each_key_counts_alone_and_test_keys_have_their_own_limit(api, sandbox_api, settings):
    settings.HERALD_RATE_LIMIT_LIVE, settings.HERALD_RATE_LIMIT_TEST = 100, 2
    _fresh_second()
    assert [sandbox_api.get(EVENTS).status_code for _ in range(3)] == [200, 200, 429]
    live = api.get(EVENTS)
    assert live.status_code == 200 and live["X-RateLimit-Limit"] == "100"


def test_an_accounts_own_limit_wins_and_errors_take_each_familys_shape(keys, settings):
    settings.HERALD_RATE_LIMIT_LIVE = 100
    keys.account.rate_limit_live = 1
    keys.account.save()
    shapes = {"/v1/contacts": {"error": "Rate limit of 1 requests per second exceeded.",
                               "code": "RATE_LIMITED"},
              "/v1/Brand/": {"Error": "Rate limit of 1 requests per second exceeded."}}
    for url, body in shapes.items():
        _fresh_second()
        client = _bearer(keys.live_key)
        assert client.get(url).status_code == 200
        refused = client.get(url)
        assert refused.status_code == 429 and refused.json() == body
    _fresh_second()
    admin = _bearer(keys.admin_key)
    admin.get("/api/v1/communications/inapp?userId=u")
    refused = admin.get("/api/v1/communications/inapp?userId=u")
    assert refused.status_code == 429 and refused["Content-Type"] == "application/problem+json"
    assert refused.json()["title"] == "Too Many Requests"


def test_a_limit_of_zero_is_no_limit_and_sends_no_headers(api, settings):
    settings.HERALD_RATE_LIMIT_LIVE = 0
    response = api.get(EVENTS)
    assert response.status_code == 200 and "X-RateLimit-Limit" not in response


def test_redis_holds_the_counters_shared_by_every_process(api, settings):
    settings.HERALD_RATE_LIMIT_REDIS_URL = REDIS_URL
    settings.HERALD_RATE_LIMIT_LIVE = 5
    _fresh_second()
    api.get(EVENTS)
    stored = redis.Redis.from_url(REDIS_URL).keys(f"herald*rps:{api.keys.account.id}:*")
    assert len(stored) == 1


def test_a_redis_outage_falls_back_to_counting_in_process(api, settings, caplog):
    settings.HERALD_RATE_LIMIT_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    settings.HERALD_RATE_LIMIT_LIVE = 2
    _fresh_second()
    with caplog.at_level(logging.WARNING, logger="api.ratelimit"):
        assert [api.get(EVENTS).status_code for _ in range(3)] == [200, 200, 429]
    assert "Rate-limit Redis unavailable" in caplog.text


def test_idempotent_replays_carry_the_headers_too(api, settings):
    settings.HERALD_RATE_LIMIT_LIVE = 10
    _fresh_second()
    api.post(EVENTS, {"name": "Gala"}, HTTP_IDEMPOTENCY_KEY="r")
    replay = api.post(EVENTS, {"name": "Gala"}, HTTP_IDEMPOTENCY_KEY="r")
    assert replay["Idempotent-Replayed"] == "true" and replay["X-RateLimit-Remaining"] == "8"


def _until_midnight() -> float:
    now = datetime.now(UTC)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
    return (midnight - now).total_seconds()


def _live_key(keys):
    return keys.account.api_keys.get(mode="live", is_admin=False)


def test_the_daily_quota_refuses_what_does_not_fit_and_reserves_nothing(keys, store):
    keys.account.daily_quota_live = 5
    keys.account.save()
    key = _live_key(keys)
    delivery_quota_take(api_key=key, count=3)
    with pytest.raises(HeraldError) as refused:
        delivery_quota_take(api_key=key, count=3)
    assert refused.value.status == 429 and refused.value.code == "rate_limited"
    assert refused.value.message == "Daily quota of 5 deliveries reached."
    assert abs(refused.value.retry_after - _until_midnight()) < 5
    delivery_quota_take(api_key=key, count=2)  # the refused 3 were not counted
    with pytest.raises(HeraldError):
        delivery_quota_take(api_key=key, count=1)


def test_test_keys_have_their_own_daily_quota_from_settings(keys, settings):
    settings.HERALD_DAILY_QUOTA_TEST = 2
    test_key = keys.account.api_keys.get(mode="test")
    delivery_quota_take(api_key=test_key, count=2)
    with pytest.raises(HeraldError):
        delivery_quota_take(api_key=test_key, count=1)
    delivery_quota_take(api_key=_live_key(keys), count=2)  # live counts apart


class Send(HeraldAPIView):
    """Stands in for a sender calling delivery_quota_take in the spec-004 family."""

    family = NOTIFICATIONS

    def post(self, request):
        delivery_quota_take(api_key=request.auth, count=int(request.data["count"]))
        return Response({"success": True})


urlpatterns = [path("send", Send.as_view())]


@pytest.mark.urls(__name__)
def test_a_senders_quota_refusal_is_a_429_with_retry_after_until_midnight(keys, settings):
    settings.HERALD_DAILY_QUOTA_LIVE = 1
    client = _bearer(keys.live_key)
    assert client.post("/send", {"count": 1}, format="json").status_code == 200
    refused = client.post("/send", {"count": 1}, format="json")
    assert refused.status_code == 429
    assert refused.json() == {"error": "Daily quota of 1 deliveries reached.",
                              "code": "RATE_LIMITED"}
    assert abs(int(refused["Retry-After"]) - _until_midnight()) < 5
