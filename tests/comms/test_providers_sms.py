"""The SMS adapters end to end: the real ``twilio`` client against a fake Twilio server, and
``boto3`` against moto's server (successes, bad numbers, bad keys) or a scripted AWS-shaped
server (outages moto cannot produce). Nothing of ours is mocked."""

import base64
import json
import socket
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sns.models import sns_backends

from comms.providers.base import (
    ChannelMessage,
    ProviderConfigurationError,
    ProviderInvalidRecipient,
    ProviderPermanentError,
    ProviderTransientError,
)
from comms.providers.sns import SnsSmsProvider
from comms.providers.twilio import TwilioSmsProvider
from tests.fakes.twilio_api import FakeTwilio

REGION = "us-east-1"
PHONE = "+15005550006"
AWS_KEYS = {"access_key_id": "AKIAHERALDTEST000001", "secret_access_key": "herald-aws-secret"}


def sms(to: str = PHONE, text: str = "Your table is ready.", title: str = "",
        **options: Any) -> ChannelMessage:
    return ChannelMessage(delivery_id="d-1", channel="sms", to=to, title=title, text=text,
                          options=options)


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# --- Twilio ------------------------------------------------------------------------------------


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


def twilio_provider(fake: FakeTwilio, *, timeout: float = 2.0, token: str | None = None,
                    **config: str) -> TwilioSmsProvider:
    config = {"api_base": fake.url, **config}
    if "messaging_service_sid" not in config:
        config.setdefault("from_number", "+15005550001")
    credentials = {"account_sid": fake.account_sid, "auth_token": token or fake.auth_token}
    return TwilioSmsProvider(config, credentials, timeout)


def test_twilio_sends_title_and_text_from_the_configured_number(twilio) -> None:
    result = twilio_provider(twilio).send(sms(title="Herald", text="Doors open at 7."))

    [sent] = twilio.messages
    assert (sent.to, sent.from_, sent.body) == (PHONE, "+15005550001", "Herald\n\nDoors open at 7.")
    assert sent.messaging_service_sid == ""
    assert result.provider_message_id == sent.sid and sent.sid.startswith("SM")


def test_twilio_sends_through_a_messaging_service(twilio) -> None:
    provider = twilio_provider(twilio, messaging_service_sid="MG" + "a" * 32)

    provider.send(sms(text="Hi"))

    [sent] = twilio.messages
    assert (sent.messaging_service_sid, sent.from_, sent.body) == ("MG" + "a" * 32, "", "Hi")
    assert "From" not in sent.form


def test_twilio_wrong_auth_token_is_a_configuration_error(twilio) -> None:
    with pytest.raises(ProviderConfigurationError) as caught:
        twilio_provider(twilio, token="not-the-token").send(sms())

    assert "20003" in str(caught.value) and "not-the-token" not in str(caught.value)
    assert twilio.messages == []


def test_twilio_403_is_a_configuration_error(twilio) -> None:
    twilio.fail_next(1, 403, code=20003, message="Permission denied")

    with pytest.raises(ProviderConfigurationError, match="Twilio rejected"):
        twilio_provider(twilio).send(sms())


@pytest.mark.parametrize(("setup", "to", "code"), [
    (None, "555-0100", "21211"),
    (FakeTwilio.unsubscribe, PHONE, "21610"),
    (FakeTwilio.add_landline, PHONE, "21614"),
])
def test_twilio_dead_numbers_are_invalid_recipients(twilio, setup, to, code) -> None:
    if setup is not None:
        setup(twilio, to)

    with pytest.raises(ProviderInvalidRecipient) as caught:
        twilio_provider(twilio).send(sms(to=to))

    assert code in str(caught.value)


def test_twilio_other_4xx_is_permanent(twilio) -> None:
    with pytest.raises(ProviderPermanentError) as caught:
        twilio_provider(twilio).send(sms(text=""))  # Twilio 21602: body required

    assert type(caught.value) is ProviderPermanentError
    assert str(caught.value) == "Twilio 400 21602"  # Twilio's message: server log only


def test_twilio_5xx_is_transient_and_not_retried(twilio) -> None:
    twilio.fail_next(1, 503)

    with pytest.raises(ProviderTransientError, match="Twilio 503"):
        twilio_provider(twilio).send(sms())

    assert twilio.attempts == 1


def test_twilio_429_is_transient_with_retry_after(twilio) -> None:
    twilio.fail_next(1, 429, code=20429, headers={"Retry-After": "7"})

    with pytest.raises(ProviderTransientError) as caught:
        twilio_provider(twilio).send(sms())

    assert caught.value.retry_after == 7.0


def test_twilio_timeout_is_transient(twilio) -> None:
    twilio.hang_next(1, seconds=10)

    with pytest.raises(ProviderTransientError, match=r"did not answer within 0\.3s"):
        twilio_provider(twilio, timeout=0.3).send(sms())


def test_twilio_connection_refused_is_transient() -> None:
    provider = TwilioSmsProvider({"api_base": closed_port_url(), "from_number": "+15005550001"},
                                 {"account_sid": "AC" + "1" * 32, "auth_token": "secret"}, 1.0)

    with pytest.raises(ProviderTransientError, match="unreachable") as caught:
        provider.send(sms())

    assert "secret" not in str(caught.value)
    assert str(caught.value) == "Twilio unreachable: Twilio ECONNREFUSED"


@pytest.mark.parametrize("code", [21212, 21606])
def test_twilio_a_sender_it_cannot_send_from_is_a_configuration_error(twilio, code) -> None:
    twilio.fail_next(1, 400, code=code, message="The 'From' number is not valid (10.0.0.1)")

    with pytest.raises(ProviderConfigurationError) as caught:
        twilio_provider(twilio).send(sms())

    assert str(caught.value) == (
        f"Twilio cannot send from the configured sender: Twilio 400 {code}")


@pytest.mark.parametrize(("config", "credentials"), [
    ({"from_number": "+15005550001"}, {"account_sid": "AC1"}),
    ({}, {"account_sid": "AC1", "auth_token": "t"}),
])
def test_twilio_incomplete_integration_is_a_configuration_error(config, credentials) -> None:
    with pytest.raises(ProviderConfigurationError):
        TwilioSmsProvider(config, credentials, 1.0)


# --- SNS against moto --------------------------------------------------------------------------


@pytest.fixture
def moto(moto_url) -> str:
    urllib.request.urlopen(urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST"))
    return moto_url


@pytest.fixture
def moto_requests(moto, tmp_path: Path, monkeypatch) -> Iterator[Any]:
    """What moto's server received, through its request recorder (moto keeps no SMS message
    attributes in its backend). The recording goes to tmp_path, not the working directory."""
    from moto.moto_api import recorder

    monkeypatch.setattr(recorder, "_location", str(tmp_path / "moto_recording"))
    _moto_api(moto, "recorder/reset-recording")
    _moto_api(moto, "recorder/start-recording")

    def publishes() -> list[dict[str, str]]:
        recording = urllib.request.urlopen(f"{moto}/moto-api/recorder/download-recording")
        forms = [_recorded_form(json.loads(line)) for line in recording.read().splitlines()]
        return [form for form in forms if form.get("Action") == "Publish"]

    yield publishes
    _moto_api(moto, "recorder/stop-recording")


def _moto_api(url: str, path: str, data: bytes = b"") -> None:
    # text/plain: moto reads reset-auth's count from the raw body, not a form.
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/{path}", data=data,
                                                  headers={"Content-Type": "text/plain"},
                                                  method="POST"))


def _recorded_form(entry: dict[str, Any]) -> dict[str, str]:
    body = entry.get("body") or ""
    raw = base64.b64decode(body).decode() if entry.get("body_encoded") else body
    return {key: values[0] for key, values in parse_qs(raw).items()}


def sms_attributes(form: dict[str, str]) -> dict[str, str]:
    """``MessageAttributes.entry.N.{Name,Value.StringValue}`` of a query-protocol Publish."""
    names = {k.split(".")[2]: v for k, v in form.items()
             if k.startswith("MessageAttributes.entry.") and k.endswith(".Name")}
    return {name: form[f"MessageAttributes.entry.{n}.Value.StringValue"]
            for n, name in names.items()}


def sns_provider(endpoint_url: str, *, timeout: float = 2.0, **config: str) -> SnsSmsProvider:
    return SnsSmsProvider({"region": REGION, "endpoint_url": endpoint_url, **config},
                          AWS_KEYS, timeout)


def moto_sms() -> dict[str, tuple[str, str]]:
    return dict(sns_backends[DEFAULT_ACCOUNT_ID][REGION].sms_messages)


def test_sns_publishes_number_text_and_sender_id(moto, moto_requests) -> None:
    provider = sns_provider(moto, sender_id="HERALD")

    result = provider.send(sms(title="Herald", text="Doors open at 7."))

    assert moto_sms() == {result.provider_message_id: (PHONE, "Herald\n\nDoors open at 7.")}
    [form] = moto_requests()
    assert (form["PhoneNumber"], form["Message"]) == (PHONE, "Herald\n\nDoors open at 7.")
    assert sms_attributes(form) == {"AWS.SNS.SMS.SenderID": "HERALD",
                                    "AWS.SNS.SMS.SMSType": "Transactional"}


def test_sns_sender_id_per_send_overrides_the_integration(moto, moto_requests) -> None:
    provider = sns_provider(moto, sender_id="HERALD", sms_type="Promotional")

    provider.send(sms(text="Hi", sender_id="GALA2025"))

    assert list(moto_sms().values()) == [(PHONE, "Hi")]
    [form] = moto_requests()
    assert sms_attributes(form) == {"AWS.SNS.SMS.SenderID": "GALA2025",
                                    "AWS.SNS.SMS.SMSType": "Promotional"}


def test_sns_invalid_number_is_an_invalid_recipient(moto) -> None:
    with pytest.raises(ProviderInvalidRecipient, match="InvalidParameter"):
        sns_provider(moto).send(sms(to="555-0100"))

    assert moto_sms() == {}


@pytest.fixture
def moto_with_iam(moto) -> Iterator[str]:
    """moto checks access keys against its IAM (so ours are unknown) until the test ends."""
    _moto_api(moto, "reset-auth", b"0")
    yield moto
    _moto_api(moto, "reset-auth", b"inf")


def test_sns_unknown_access_key_is_a_configuration_error(moto_with_iam) -> None:
    with pytest.raises(ProviderConfigurationError, match="InvalidClientTokenId") as caught:
        sns_provider(moto_with_iam).send(sms())

    assert AWS_KEYS["secret_access_key"] not in str(caught.value)
    assert moto_sms() == {}


# --- SNS outages, from a scripted AWS-shaped server --------------------------------------------


class ScriptedAws:
    """Answers every request with one AWS query-protocol error (or hangs first)."""

    def __init__(self, status: int, code: str, message: str, *,
                 headers: dict[str, str] | None = None, hang: float = 0.0) -> None:
        self.requests = 0
        self._release = threading.Event()
        body = (f'<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error>'
                f"<Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
                f"<RequestId>b0a1c2d3</RequestId></ErrorResponse>").encode()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fake.requests += 1
                fake._release.wait(hang)
                self.send_response(status)
                for name, value in {"Content-Type": "text/xml", **(headers or {}),
                                    "Content-Length": str(len(body))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> "ScriptedAws":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()


def test_sns_5xx_is_transient_and_not_retried() -> None:
    with ScriptedAws(500, "InternalError", "Internal failure") as aws:
        with pytest.raises(ProviderTransientError, match="SNS 500 InternalError"):
            sns_provider(aws.url).send(sms())
    assert aws.requests == 1


def test_sns_throttling_is_transient_with_retry_after() -> None:
    with ScriptedAws(429, "Throttled", "Rate exceeded", headers={"Retry-After": "3"}) as aws:
        with pytest.raises(ProviderTransientError) as caught:
            sns_provider(aws.url).send(sms())
    assert caught.value.retry_after == 3.0


def test_sns_timeout_is_transient() -> None:
    with ScriptedAws(500, "InternalError", "late", hang=10) as aws:
        with pytest.raises(ProviderTransientError, match=r"did not answer within 0\.3s"):
            sns_provider(aws.url, timeout=0.3).send(sms())


def test_sns_connection_refused_is_transient() -> None:
    with pytest.raises(ProviderTransientError) as caught:
        sns_provider(closed_port_url()).send(sms())
    assert str(caught.value) == "SNS unreachable: SNS ECONNREFUSED"  # never the URL


def test_sns_authorization_error_is_a_configuration_error() -> None:
    with ScriptedAws(403, "AuthorizationError", "User is not authorized to perform: "
                     "SNS:Publish") as aws:
        with pytest.raises(ProviderConfigurationError, match="AuthorizationError"):
            sns_provider(aws.url).send(sms())


def test_sns_other_4xx_is_permanent() -> None:
    with ScriptedAws(400, "InvalidParameter", "Invalid parameter: Message too long") as aws:
        with pytest.raises(ProviderPermanentError) as caught:
            sns_provider(aws.url).send(sms())
    assert type(caught.value) is ProviderPermanentError
    assert str(caught.value) == "SNS 400 InvalidParameter"


def test_sns_needs_access_keys() -> None:
    with pytest.raises(ProviderConfigurationError, match="access_key_id"):
        SnsSmsProvider({}, {"access_key_id": "AKIA"}, 1.0)
