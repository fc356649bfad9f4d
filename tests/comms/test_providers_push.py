"""The push adapters (Expo, FCM v1) against real local fakes of the vendors' HTTP APIs."""

import json
import time
from collections.abc import Iterator

import pytest
import requests
from google.auth import crypt, jwt

from comms.providers.base import (
    ChannelMessage,
    ProviderConfigurationError,
    ProviderInvalidRecipient,
    ProviderPermanentError,
    ProviderTransientError,
)
from comms.providers.expo import ExpoPushProvider, is_expo_token
from comms.providers.fcm import FcmPushProvider
from tests.fakes.push_api import FakeExpo, FakeFcm, make_service_account

EXPO_TOKEN = "ExponentPushToken[xxxxxxxxxxxxxxxxxxxxxx]"
FCM_TOKEN = "dGVzdC1kZXZpY2U6APA91bHf-token_1234567890"


def push(to: str, *, data: dict | None = None, title: str = "Doors open") -> ChannelMessage:
    return ChannelMessage(delivery_id="d-1", channel="push", to=to, title=title,
                          text="Gate B, 19:00", options={"data": data} if data else {})


# --- Expo ----------------------------------------------------------------------------------


@pytest.fixture
def expo() -> Iterator[FakeExpo]:
    with FakeExpo(access_token="expo-secret") as fake:
        yield fake


def expo_provider(fake: FakeExpo, *, token: str = "expo-secret",
                  timeout: float = 5) -> ExpoPushProvider:
    return ExpoPushProvider({"api_base": fake.url}, {"access_token": token}, timeout)


@pytest.mark.parametrize("token, valid", [
    ("ExponentPushToken[xxxxxxxxxxxxxxxxxxxxxx]", True),
    ("ExpoPushToken[abc-DEF_123]", True),
    ("ExponentPushToken[]", False),
    ("ExponentPushToken[a b]", False),
    ("ExponentPushToken[abc", False),
    ("fcm-token-abc", False),
    ("", False),
])
def test_is_expo_token(token: str, valid: bool) -> None:
    assert is_expo_token(token) is valid


def test_expo_send_delivers_the_exact_payload_and_returns_the_ticket_id(expo) -> None:
    result = expo_provider(expo).send(push(EXPO_TOKEN, data={"event": "e-1", "seat": 12}))

    [received] = expo.messages
    assert received.body == {"to": EXPO_TOKEN, "title": "Doors open", "body": "Gate B, 19:00",
                             "data": {"event": "e-1", "seat": 12}}
    assert received.headers["Authorization"] == "Bearer expo-secret"
    assert len(result.provider_message_id) == 36  # the fake's ticket id, a uuid


def test_expo_accepts_the_newer_token_spelling_without_access_token() -> None:
    with FakeExpo() as fake:
        provider = ExpoPushProvider({"api_base": fake.url}, {}, 5)
        provider.send(push("ExpoPushToken[abc]", title=""))
    assert fake.messages[0].body == {"to": "ExpoPushToken[abc]", "body": "Gate B, 19:00"}
    assert "Authorization" not in fake.messages[0].headers


def test_expo_unregistered_device_is_an_invalid_recipient(expo) -> None:
    expo.unregistered.add(EXPO_TOKEN)
    with pytest.raises(ProviderInvalidRecipient, match="DeviceNotRegistered"):
        expo_provider(expo).send(push(EXPO_TOKEN))


def test_expo_malformed_token_is_refused_before_any_request(expo) -> None:
    with pytest.raises(ProviderInvalidRecipient, match="Not an Expo push token"):
        expo_provider(expo).send(push("not-a-token"))
    assert expo.attempts == 0


def test_expo_wrong_access_token_is_a_configuration_error(expo) -> None:
    with pytest.raises(ProviderConfigurationError, match="401") as caught:
        expo_provider(expo, token="wrong-secret").send(push(EXPO_TOKEN))
    assert "wrong-secret" not in str(caught.value)


@pytest.mark.parametrize("error, exc_type", [
    ("MessageTooBig", ProviderPermanentError),
    ("MessageRateExceeded", ProviderTransientError),
    ("InvalidCredentials", ProviderConfigurationError),
    ("SomethingNew", ProviderPermanentError),
])
def test_expo_ticket_errors_are_classified(expo, error, exc_type) -> None:
    expo.ticket_errors[EXPO_TOKEN] = error
    with pytest.raises(exc_type, match=error) as caught:
        expo_provider(expo).send(push(EXPO_TOKEN))
    assert not isinstance(caught.value, ProviderInvalidRecipient)


def test_expo_oversized_message_is_permanent(expo) -> None:
    with pytest.raises(ProviderPermanentError, match="MessageTooBig"):
        expo_provider(expo).send(push(EXPO_TOKEN, data={"blob": "x" * 5000}))


def test_expo_rate_limit_is_transient_with_retry_after(expo) -> None:
    expo.fail_next(1, 429, headers={"Retry-After": "30"})
    with pytest.raises(ProviderTransientError, match="TOO_MANY_REQUESTS") as caught:
        expo_provider(expo).send(push(EXPO_TOKEN))
    assert caught.value.retry_after == 30


@pytest.mark.parametrize("status", [500, 502, 503])
def test_expo_server_errors_are_transient(expo, status) -> None:
    expo.fail_next(1, status, headers={"Retry-After": "7"})
    with pytest.raises(ProviderTransientError, match=str(status)) as caught:
        expo_provider(expo).send(push(EXPO_TOKEN))
    assert caught.value.retry_after == 7
    expo_provider(expo).send(push(EXPO_TOKEN))  # the next call goes through
    assert len(expo.messages) == 1


def test_expo_request_errors_are_permanent(expo) -> None:
    expo.fail_next(1, 400, body={"errors": [{"code": "VALIDATION_ERROR", "message": "bad"}]})
    with pytest.raises(ProviderPermanentError, match="VALIDATION_ERROR"):
        expo_provider(expo).send(push(EXPO_TOKEN))


def test_expo_timeout_is_transient(expo) -> None:
    expo.set_delay(2)
    started = time.monotonic()
    with pytest.raises(ProviderTransientError, match=r"did not answer within 0\.3s"):
        expo_provider(expo, timeout=0.3).send(push(EXPO_TOKEN))
    assert time.monotonic() - started < 1.5


def test_expo_unreachable_is_transient() -> None:
    with FakeExpo() as fake:
        url = fake.url
    with pytest.raises(ProviderTransientError) as caught:
        ExpoPushProvider({"api_base": url}, {}, 2).send(push(EXPO_TOKEN))
    assert str(caught.value) == "Expo push API unreachable: Expo push API ECONNREFUSED"


# --- FCM -----------------------------------------------------------------------------------


@pytest.fixture
def fcm() -> Iterator[FakeFcm]:
    with FakeFcm() as fake:
        yield fake


def fcm_provider(fake: FakeFcm, key: str | None = None, *, timeout: float = 5,
                 **config: str) -> FcmPushProvider:
    key = make_service_account(fake) if key is None else key
    return FcmPushProvider({"api_base": fake.url, **config}, {"service_account_json": key},
                           timeout)


def test_fcm_send_delivers_the_exact_payload_and_returns_the_message_name(fcm) -> None:
    result = fcm_provider(fcm).send(push(FCM_TOKEN, data={"event": "e-1", "seat": 12}))

    [received] = fcm.messages
    assert received.path == "/v1/projects/herald-test/messages:send"
    assert received.body == {"message": {
        "token": FCM_TOKEN,
        "notification": {"title": "Doors open", "body": "Gate B, 19:00"},
        "data": {"event": "e-1", "seat": "12"},
    }}
    assert received.headers["Authorization"].startswith("Bearer ya29.fake-")
    assert result.provider_message_id.startswith("projects/herald-test/messages/")


def test_fcm_project_id_from_config_overrides_the_key_file(fcm) -> None:
    key = make_service_account(fcm, project_id="other-project")
    fcm_provider(fcm, key, project_id="other-project").send(push(FCM_TOKEN))
    assert fcm.messages[0].path == "/v1/projects/other-project/messages:send"


def test_fcm_caches_the_access_token_across_sends_and_providers(fcm) -> None:
    key = make_service_account(fcm)
    fcm_provider(fcm, key).send(push(FCM_TOKEN))
    fcm_provider(fcm, key).send(push(FCM_TOKEN))  # a new provider, as each send builds one
    assert fcm.token_requests == 1
    assert len(fcm.messages) == 2


def test_fcm_refreshes_a_token_about_to_expire() -> None:
    with FakeFcm(expires_in=60) as fake:  # inside google-auth's refresh margin
        provider = fcm_provider(fake)
        provider.send(push(FCM_TOKEN))
        provider.send(push(FCM_TOKEN))
    assert fake.token_requests == 2


def test_fcm_revoked_token_is_refreshed_once(fcm) -> None:
    provider = fcm_provider(fcm)
    provider.send(push(FCM_TOKEN))
    fcm.revoke_tokens()
    provider.send(push(FCM_TOKEN))
    assert fcm.token_requests == 2
    assert len(fcm.messages) == 2


def test_fcm_unregistered_token_is_an_invalid_recipient(fcm) -> None:
    fcm.unregistered.add(FCM_TOKEN)
    with pytest.raises(ProviderInvalidRecipient, match="UNREGISTERED"):
        fcm_provider(fcm).send(push(FCM_TOKEN))


def test_fcm_malformed_token_is_an_invalid_recipient(fcm) -> None:
    with pytest.raises(ProviderInvalidRecipient) as caught:
        fcm_provider(fcm).send(push("short"))
    # Google's own words stay in the server log: the tenant sees status and code only.
    assert str(caught.value) == "FCM token rejected: FCM 400 INVALID_ARGUMENT"


def test_fcm_sender_id_mismatch_is_an_invalid_recipient(fcm) -> None:
    fcm.sender_mismatch.add(FCM_TOKEN)
    with pytest.raises(ProviderInvalidRecipient, match="SENDER_ID_MISMATCH"):
        fcm_provider(fcm).send(push(FCM_TOKEN))


def test_fcm_other_invalid_argument_is_permanent(fcm) -> None:
    fcm.fail_next(1, 400)
    with pytest.raises(ProviderPermanentError) as caught:
        fcm_provider(fcm).send(push(FCM_TOKEN))
    assert not isinstance(caught.value, ProviderInvalidRecipient)


def test_fcm_key_google_does_not_know_is_a_configuration_error(fcm) -> None:
    key = make_service_account(fcm, register=False)
    with pytest.raises(ProviderConfigurationError, match="invalid_grant") as caught:
        fcm_provider(fcm, key).send(push(FCM_TOKEN))
    assert "PRIVATE KEY" not in str(caught.value)
    assert "account not found" not in str(caught.value)  # the endpoint's text: logged only


def test_fcm_key_signed_with_the_wrong_private_key_is_a_configuration_error(fcm) -> None:
    registered = json.loads(make_service_account(fcm))
    forged = json.loads(make_service_account(fcm, register=False))
    key = json.dumps({**registered, "private_key": forged["private_key"]})
    with pytest.raises(ProviderConfigurationError, match=r"\(OAuth invalid_grant\)"):
        fcm_provider(fcm, key).send(push(FCM_TOKEN))


def test_fcm_project_the_account_may_not_use_is_a_configuration_error(fcm) -> None:
    with pytest.raises(ProviderConfigurationError, match="PERMISSION_DENIED"):
        fcm_provider(fcm, project_id="someone-else").send(push(FCM_TOKEN))


@pytest.mark.parametrize("key, message", [
    ("", "not a JSON key file"),
    ("[1]", "not a JSON key file"),
    ('{"project_id": "p", "client_email": "a@b"}', "lacks private_key, token_uri"),
])
def test_fcm_unusable_key_file_is_a_configuration_error(fcm, key, message) -> None:
    with pytest.raises(ProviderConfigurationError, match=message):
        fcm_provider(fcm, key)


def test_fcm_private_key_that_is_not_pem_is_a_configuration_error(fcm) -> None:
    key = json.dumps({**json.loads(make_service_account(fcm)), "private_key": "garbage"})
    with pytest.raises(ProviderConfigurationError, match="not a valid PEM key") as caught:
        fcm_provider(fcm, key)
    assert "garbage" not in str(caught.value)


@pytest.mark.parametrize("claims, problem", [
    ({"aud": "https://evil.example/token"}, "audience"),
    ({"scope": "https://www.googleapis.com/auth/cloud-platform"}, "scope"),
    ({"exp": 2_000_000_000}, "short-lived"),
])
def test_fake_token_endpoint_checks_the_grant_claims(fcm, claims, problem) -> None:
    info = json.loads(make_service_account(fcm))
    now = int(time.time())
    assertion = jwt.encode(crypt.RSASigner.from_service_account_info(info), {
        "iss": info["client_email"], "aud": info["token_uri"], "iat": now, "exp": now + 3600,
        "scope": "https://www.googleapis.com/auth/firebase.messaging", **claims})
    response = requests.post(info["token_uri"], timeout=5, data={
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion})
    assert response.status_code == 400
    assert problem in response.json()["error_description"]


def test_fcm_token_endpoint_outage_is_transient(fcm) -> None:
    fcm.fail_next_token(3, 503)  # google-auth itself retries the exchange twice
    with pytest.raises(ProviderTransientError, match="token endpoint"):
        fcm_provider(fcm).send(push(FCM_TOKEN))


@pytest.mark.parametrize("status, code", [
    (429, "QUOTA_EXCEEDED"), (500, "INTERNAL"), (503, "UNAVAILABLE"),
])
def test_fcm_overload_is_transient_with_retry_after(fcm, status, code) -> None:
    fcm.fail_next(1, status, headers={"Retry-After": "42"})
    provider = fcm_provider(fcm)
    with pytest.raises(ProviderTransientError, match=code) as caught:
        provider.send(push(FCM_TOKEN))
    assert caught.value.retry_after == 42
    provider.send(push(FCM_TOKEN))
    assert len(fcm.messages) == 1


def test_fcm_retry_after_as_an_http_date(fcm) -> None:
    fcm.fail_next(1, 503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    with pytest.raises(ProviderTransientError) as caught:
        fcm_provider(fcm).send(push(FCM_TOKEN))
    assert caught.value.retry_after == 0  # in the past: retry at once


def test_fcm_send_timeout_is_transient(fcm) -> None:
    provider = fcm_provider(fcm, timeout=0.3)
    provider.send(push(FCM_TOKEN))  # gets the token first
    fcm.set_delay(2)
    started = time.monotonic()
    with pytest.raises(ProviderTransientError, match=r"did not answer within 0\.3s"):
        provider.send(push(FCM_TOKEN))
    assert time.monotonic() - started < 1.5


def test_fcm_token_endpoint_timeout_is_transient(fcm) -> None:
    fcm.set_delay(2)
    started = time.monotonic()
    with pytest.raises(ProviderTransientError, match="unreachable"):
        fcm_provider(fcm, timeout=0.3).send(push(FCM_TOKEN))
    assert time.monotonic() - started < 1.5


def test_fcm_unreachable_is_transient() -> None:
    with FakeFcm() as fake:
        key = make_service_account(fake)
        url = fake.url
    provider = FcmPushProvider({"api_base": url}, {"service_account_json": key}, 2)
    with pytest.raises(ProviderTransientError, match="unreachable"):
        provider.send(push(FCM_TOKEN))  # the token endpoint first


def test_fcm_send_to_a_closed_port_is_transient_and_names_the_kind(fcm) -> None:
    provider = fcm_provider(fcm)
    provider.send(push(FCM_TOKEN))  # gets the token first
    with FakeFcm() as gone:
        provider.url = f"{gone.url}/v1/projects/herald-test/messages:send"
    with pytest.raises(ProviderTransientError) as caught:
        provider.send(push(FCM_TOKEN))
    assert str(caught.value) == "FCM unreachable: FCM ECONNREFUSED"


def test_fcm_an_error_status_that_is_not_a_name_is_left_out(fcm) -> None:
    """A hostile body's ``status`` (a list, an object) is neither a label nor a table key."""
    fcm.fail_next(1, 403, body={"error": {"status": {"code": ["x"]}, "details": [[]]}})
    with pytest.raises(ProviderConfigurationError) as caught:
        fcm_provider(fcm).send(push(FCM_TOKEN))
    assert str(caught.value) == "FCM refused the service account: FCM 403"
