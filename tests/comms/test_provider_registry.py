"""The engine asks the provider registry, never a provider's name: the platform provider of
a channel, the test keys' provider, how a provider batches, which providers take callbacks."""

import pytest
from django.urls import reverse

from comms.channels import Unusable, chain_for
from comms.models import Delivery, DeliveryEvent
from comms.providers import email_provider, registry
from comms.providers.base import ProviderConfigurationError
from comms.tasks import apply_provider_event, apply_sandbox_event
from tests.conftest import guest


def test_the_platform_provider_of_a_channel_is_the_registrys_answer(settings):
    settings.HERALD_EMAIL_PROVIDER = "smtp"
    assert registry.platform_for("email").name == "smtp"
    assert registry.platform_for("inapp").builtin
    assert registry.platform_for("sms") is None  # an account's integrations
    assert registry.for_test_keys().test and registry.for_test_keys().in_process
    settings.HERALD_EMAIL_PROVIDER = "twilio"  # a provider, but not of email
    with pytest.raises(ProviderConfigurationError):
        registry.platform_for("email")


def test_a_platform_provider_the_settings_do_not_name_is_a_link_answering_why(settings, db):
    settings.HERALD_EMAIL_PROVIDER = "nosuch"
    [link] = chain_for(account_id=None, channel="email", test_mode=False)
    assert isinstance(link.adapter, Unusable)
    with pytest.raises(ProviderConfigurationError, match="nosuch"):
        link.adapter.send(None)
    assert [type(e) for e in link.adapter.send_batch([1, 2])] == [ProviderConfigurationError] * 2
    assert [type(e) for e in link.adapter.send_each([1])] == [ProviderConfigurationError]


def test_a_platform_adapter_is_rebuilt_when_any_setting_changes(settings):
    """Cached per process, but not past a change of a setting only SMTP (or SES) reads."""
    first = email_provider("smtp")
    assert email_provider("smtp") is first
    settings.EMAIL_HOST = "mail.example.org"
    assert email_provider("smtp") is not first


def test_every_provider_with_callbacks_has_its_url():
    for provider in registry.providers(capability="callbacks"):
        assert reverse(f"callbacks-{provider.name}") == f"/callbacks/{provider.name}"


@pytest.mark.django_db
def test_the_follow_up_task_keeps_its_former_name_for_messages_queued_before(
        sandbox_api, event_id, template_id, settings):
    """The sandbox's later events run under ``comms.apply_provider_event``; a message still
    carrying ``comms.apply_sandbox_event`` is applied the same way."""
    assert apply_sandbox_event.name == "comms.apply_sandbox_event"
    routes = settings.CELERY_TASK_ROUTES
    assert routes[apply_provider_event.name] == routes[apply_sandbox_event.name] == {
        "queue": "lifecycle"}
    response = sandbox_api.post("/checkin/v1/api/guest", guest(event_id, template_id))
    delivery_id = response.json()["attendeeInvitationId"]
    apply_sandbox_event.delay(delivery_id=delivery_id, event="clicked",
                              provider_event_id="old-name-1", provider="sandbox")
    apply_provider_event.delay(delivery_id=delivery_id, event="clicked",
                               provider_event_id="new-name-1")
    events = DeliveryEvent.objects.filter(delivery_id=delivery_id,
                                          provider_event_id__in=["old-name-1", "new-name-1"])
    assert events.count() == 2
    assert Delivery.objects.get(id=delivery_id).status == "clicked"
