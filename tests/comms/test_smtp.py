"""SMTP through Django's mail backend, against a real local aiosmtpd server."""


import pytest

from comms.models import Delivery, DeliveryEvent
from comms.providers import email_provider
from comms.providers.base import (
    ProviderConfigurationError,
    ProviderPermanentError,
    ProviderTransientError,
)
from tests.conftest import guest
from tests.fakes.smtp_server import free_port
from tests.fakes.smtp_server import message as _message


def _send(api, event_id, template_id, **fields) -> Delivery:
    response = api.post("/checkin/v1/api/guest", guest(event_id, template_id, **fields))
    assert response.status_code == 200, response.content
    return Delivery.objects.get(id=response.json()["attendeeInvitationId"])


def test_rendered_ticket_reaches_the_smtp_server(api, smtp, event_id, template_id):
    delivery = _send(api, event_id, template_id)
    assert delivery.status == "sent" and delivery.provider == "smtp"
    [message] = smtp.messages
    assert smtp.envelopes[0].mail_from == "tickets@herald.localhost"
    assert smtp.envelopes[0].rcpt_tos == ["jane@example.com"]
    assert message["Subject"] == "Your ticket for Spring Gala"
    assert message["From"] == "Herald <tickets@herald.localhost>"
    assert message["To"] == "Jane Smith <jane@example.com>"
    assert message["X-Herald-Delivery-Id"] == str(delivery.id)
    assert message["Message-ID"] == delivery.provider_message_id
    assert delivery.provider_message_id.endswith("@herald.localhost>")
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert text.strip() == "Hi Jane, see you at Spring Gala."
    assert html.strip() == "<p>Hi Jane, see you at Spring Gala.</p>"


def test_recipient_refused_with_5xx_fails_at_once(api, smtp, event_id, template_id):
    smtp.refuse("RCPT", "550 5.1.1 No such user here")
    delivery = _send(api, event_id, template_id)
    assert delivery.status == "failed" and delivery.failure_type == "provider_rejected"
    # The codes only: the server's text goes to the log, never to the tenant.
    assert delivery.failure_reason == "SMTP recipient refused: SMTP 550 5.1.1"
    assert delivery.attempts == 1 and smtp.messages == []


def test_data_refused_with_5xx_fails_at_once(api, smtp, event_id, template_id):
    smtp.refuse("DATA", "554 5.7.1 Message rejected as spam")
    delivery = _send(api, event_id, template_id)
    assert delivery.status == "failed" and delivery.failure_type == "provider_rejected"
    assert "554" in delivery.failure_reason
    assert delivery.attempts == 1


def test_4xx_is_retried_then_sent(api, smtp, event_id, template_id):
    smtp.refuse("RCPT", "451 4.3.0 Try again later", times=2)
    delivery = _send(api, event_id, template_id)
    assert delivery.status == "sent" and delivery.attempts == 3
    assert len(smtp.messages) == 1
    retries = DeliveryEvent.objects.filter(delivery=delivery, name="comms.retry_scheduled")
    assert "451" in retries.first().detail["reason"]


def test_connection_refused_retries_then_fails(api, settings, event_id, template_id):
    settings.HERALD_EMAIL_PROVIDER = "smtp"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()  # nothing listens
    settings.HERALD_SEND_MAX_ATTEMPTS = 3
    delivery = _send(api, event_id, template_id)
    assert delivery.status == "failed" and delivery.failure_type == "transient"
    assert delivery.attempts == 3
    assert "unreachable" in delivery.failure_reason
    assert DeliveryEvent.objects.filter(delivery=delivery,
                                        name="comms.retry_scheduled").count() == 2


def test_text_only_and_non_ascii_names(smtp):
    result = email_provider("smtp").send(_message(to_name="Zoë Ñandú", from_name="Hérald"))
    [message] = smtp.messages
    assert message["Message-ID"] == result.provider_message_id
    assert message["To"] == "Zoë Ñandú <jane@example.com>"
    assert message.get_content_type() == "text/plain"


def test_tls_and_ssl_together_is_a_configuration_error(smtp, settings):
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = True
    with pytest.raises(ProviderConfigurationError):
        email_provider("smtp").send(_message())


def test_starttls_not_offered_is_a_configuration_error(smtp, settings):
    settings.EMAIL_USE_TLS = True  # the test server offers no STARTTLS
    with pytest.raises(ProviderConfigurationError):
        email_provider("smtp").send(_message())


def test_a_batch_whose_session_cannot_open_fails_each_message_as_configuration(smtp,
                                                                               settings):
    settings.EMAIL_USE_TLS = True  # the test server offers no STARTTLS: open() fails
    outcomes = email_provider("smtp").send_batch([_message(), _message(), _message()])
    assert [type(o) for o in outcomes] == [ProviderConfigurationError] * 3
    assert smtp.messages == []


def test_adapter_error_types(smtp):
    smtp.refuse("RCPT", "452 4.2.2 Mailbox full")
    with pytest.raises(ProviderTransientError, match="452"):
        email_provider("smtp").send(_message())
    smtp.refuse("DATA", "552 5.3.4 Message too big")
    with pytest.raises(ProviderPermanentError, match="552"):
        email_provider("smtp").send(_message())


def test_a_batch_shares_one_session_and_keeps_each_outcome(smtp):
    smtp.refuse("RCPT", "550 5.1.1 No such user")
    outcomes = email_provider("smtp").send_batch(
        [_message(to_email=f"p{n}@example.com") for n in range(4)])
    assert isinstance(outcomes[0], ProviderPermanentError) and "550" in str(outcomes[0])
    assert [type(o).__name__ for o in outcomes[1:]] == ["SendResult"] * 3
    assert [m["To"] for m in smtp.messages] == [f"p{n}@example.com" for n in (1, 2, 3)]
    assert [m["Message-ID"] for m in smtp.messages] == [
        o.provider_message_id for o in outcomes[1:]]
    assert len(set(smtp.peers)) == 1  # one connection for the whole batch


def test_a_batch_to_an_unreachable_server_fails_each_transiently(settings):
    settings.HERALD_EMAIL_PROVIDER = "smtp"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 2
    outcomes = email_provider("smtp").send_batch([_message(), _message()])
    assert all(isinstance(o, ProviderTransientError) for o in outcomes)


def test_a_server_that_never_greets_is_a_transient_timeout(settings):
    """Connected, but no greeting within EMAIL_TIMEOUT: the base's one timeout reason."""
    import socket

    settings.HERALD_EMAIL_PROVIDER = "smtp"
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 0.5
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # the kernel completes the handshake; nothing ever answers
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", silent.getsockname()[1]
        with pytest.raises(ProviderTransientError) as caught:
            email_provider("smtp").send(_message())
        [outcome] = email_provider("smtp").send_batch([_message()])
    assert str(caught.value) == str(outcome) == "SMTP did not answer within 0.5s."


def test_the_pipeline_sends_a_batch_over_one_session(api, smtp, event_id, template_id):
    from comms.dispatch import delivery_dispatch
    from comms.models import Status

    rows = [Delivery.objects.create(account=api.keys.account, template_id=template_id,
                                    recipient=f"g{n}@example.com") for n in range(5)]
    delivery_dispatch(delivery_id=str(rows[0].id))
    assert set(Delivery.objects.values_list("status", flat=True)) == {Status.SENT}
    assert len(smtp.messages) == 5 and len(set(smtp.peers)) == 1


def test_reply_to_reaches_the_message(smtp):
    email_provider("smtp").send(_message(reply_to="support@co.example"))
    [message] = smtp.messages
    assert message["Reply-To"] == "support@co.example"


def test_reply_to_goes_into_ses_parameters():
    from comms.providers.ses import SesConfig, send_email_params

    params = send_email_params(_message(reply_to="support@co.example"),
                               SesConfig(region="us-east-1", configuration_set="",
                                         endpoint_url="", timeout=2))
    assert params["ReplyToAddresses"] == ["support@co.example"]
    assert "ReplyToAddresses" not in send_email_params(
        _message(), SesConfig(region="us-east-1", configuration_set="", endpoint_url="",
                              timeout=2))
