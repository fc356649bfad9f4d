"""Failed authentications are limited per client address and per presented key.

- a failed authentication is any request answered 401: an unknown or revoked bearer key, a
  malformed ``Authorization`` header, a missing or wrong ``Ocp-Apim-Subscription-Key``;
- after ``HERALD_AUTH_FAILURE_LIMIT`` failures from one client address (or with one bearer
  key) within ``HERALD_AUTH_FAILURE_WINDOW_SECONDS``, a request that fails again gets 429
  (with ``Retry-After``) in the family's error shape: ``{"error": "rate_limited", "message"}``
  for check-in & comms, ``{"error", "code": "RATE_LIMITED"}`` for event notifications;
- failures count per client address across every family; the address is ``REMOTE_ADDR``
  (an ``X-Forwarded-For`` header sent by the client does not change it);
- a key that authenticates is never refused (tests/security/test_abuse.py), other addresses are not
  affected, and the block ends with the window.
"""

import itertools
import os
import time

import pytest
from rest_framework.test import APIClient

LIMIT = 5
# The counters outlive a test (in this process, or in Redis): each run and test uses fresh
# addresses and keys.
_RUN = os.getpid() % 250
_SEQ = itertools.count(1)
ATTACKER = BYSTANDER = ""


@pytest.fixture(autouse=True)
def limits(settings):
    global ATTACKER, BYSTANDER
    settings.HERALD_AUTH_FAILURE_LIMIT = LIMIT
    settings.HERALD_AUTH_FAILURE_WINDOW_SECONDS = 60
    n = next(_SEQ)
    ATTACKER, BYSTANDER = f"203.0.{_RUN}.{n}", f"198.51.{_RUN}.{n}"


def _get(path: str, address: str, **headers: str):
    return APIClient().get(path, REMOTE_ADDR=address, **headers)


def _bad(n: int) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer live_guessed{ATTACKER}_{n:04d}",
            "HTTP_OCP_APIM_SUBSCRIPTION_KEY": "sub_guess"}


def test_failed_keys_from_one_address_are_limited(keys):
    for n in range(LIMIT):
        assert _get("/checkin/v1/api/event", ATTACKER, **_bad(n)).status_code == 401
    response = _get("/checkin/v1/api/event", ATTACKER, **_bad(LIMIT))
    assert response.status_code == 429, response.content
    assert response.json()["error"] == "rate_limited" and response.json()["message"]
    assert int(response["Retry-After"]) > 0
    # Further guesses stay blocked.
    blocked = _get("/checkin/v1/api/event", ATTACKER, **_bad(LIMIT + 1))
    assert blocked.status_code == 429


def test_the_event_notifications_family_answers_in_its_shape(keys):
    for n in range(LIMIT):
        assert _get("/v1/webhooks", ATTACKER,
                    HTTP_AUTHORIZATION=f"Bearer live_x{ATTACKER}_{n}").status_code == 401
    response = _get("/v1/webhooks", ATTACKER, HTTP_AUTHORIZATION=f"Bearer live_x{ATTACKER}")
    assert response.status_code == 429, response.content
    assert response.json()["code"] == "RATE_LIMITED" and response.json()["error"]
    assert int(response["Retry-After"]) > 0


def test_subscription_key_guesses_count_too(keys):
    for n in range(LIMIT):
        response = _get("/checkin/v1/api/event", ATTACKER,
                        HTTP_AUTHORIZATION=f"Bearer {keys.live_key}",
                        HTTP_OCP_APIM_SUBSCRIPTION_KEY=f"sub_guess{n}")
        assert response.status_code == 401
    response = _get("/checkin/v1/api/event", ATTACKER,
                    HTTP_AUTHORIZATION=f"Bearer {keys.live_key}",
                    HTTP_OCP_APIM_SUBSCRIPTION_KEY="sub_guess")
    assert response.status_code == 429, response.content


def test_failures_add_up_across_families_and_malformed_headers(keys):
    attempts = [
        ("/checkin/v1/api/event", {"HTTP_AUTHORIZATION": f"Bearer live_a{ATTACKER}"}),
        ("/v1/webhooks", {"HTTP_AUTHORIZATION": f"Bearer live_b{ATTACKER}"}),
        ("/checkin/v1/api/guest/1", {"HTTP_AUTHORIZATION": "Basic dXNlcjpwYXNz"}),
        ("/v1/webhooks", {"HTTP_AUTHORIZATION": f"live_c{ATTACKER}"}),
        ("/comms/v1/api/comms/template", {"HTTP_AUTHORIZATION": f"Bearer {keys.live_key}"}),
    ]
    assert len(attempts) == LIMIT
    for path, headers in attempts:
        assert _get(path, ATTACKER, **headers).status_code == 401, path
    assert _get("/comms/v1/api/comms/send/1", ATTACKER, **_bad(0)).status_code == 429


def test_a_forwarded_for_header_does_not_reset_the_count(keys):
    for n in range(LIMIT):
        _get("/checkin/v1/api/event", ATTACKER, HTTP_X_FORWARDED_FOR=f"10.0.0.{n}", **_bad(n))
    response = _get("/checkin/v1/api/event", ATTACKER, HTTP_X_FORWARDED_FOR="10.9.9.9",
                    **_bad(99))
    assert response.status_code == 429, response.content


def test_other_addresses_and_good_keys_are_not_affected(keys):
    for n in range(LIMIT + 3):
        _get("/checkin/v1/api/event", ATTACKER, **_bad(n))
    good = {"HTTP_AUTHORIZATION": f"Bearer {keys.live_key}",
            "HTTP_OCP_APIM_SUBSCRIPTION_KEY": keys.subscription_key}
    assert _get("/checkin/v1/api/event", BYSTANDER, **good).status_code == 200
    assert _get("/checkin/v1/api/event", BYSTANDER, **_bad(1)).status_code == 401
    # Successful calls are never limited by this rule.
    for _ in range(LIMIT * 3):
        assert _get("/checkin/v1/api/event", BYSTANDER, **good).status_code == 200


def test_the_block_ends_with_the_window(keys, settings):
    settings.HERALD_AUTH_FAILURE_WINDOW_SECONDS = 1
    for n in range(LIMIT):
        _get("/checkin/v1/api/event", ATTACKER, **_bad(n))
    assert _get("/checkin/v1/api/event", ATTACKER, **_bad(0)).status_code == 429
    time.sleep(2.1)
    assert _get("/checkin/v1/api/event", ATTACKER, **_bad(0)).status_code == 401
