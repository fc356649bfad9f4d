"""The engine's admin pages in staff's words (#18 findings 8-9): a delivery is headed by what
it is, not its UUID, and tells its history as sentences, not JSON; channels read "SMS",
"In-app", "WhatsApp"; the list shows no ids or sending-service jargon; the dashboard's chart
scales to its box; a membership is named by its user and role."""

import re

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Membership
from accounts.services import membership_add
from comms.models import CHANNEL_CHOICES, Delivery, Suppression
from comms.providers.registry import CHANNEL_LABELS, CHANNELS
from tests.conftest import guest

# Words a developer would use and staff should not meet on these pages.
JARGON = ["Provider", "Claimed at", "GUID", "Owner id", "Refs", "Sms", "Inapp", "Whatsapp",
          "provider_event_id", "/comms/v1/api/"]


def _owner(keys) -> Client:
    membership = membership_add(account=keys.account, username="olive",
                                role=Membership.Role.OWNER)
    client = Client()
    client.force_login(membership.user)
    return client


def _visible(html: str) -> str:
    """The page's text as a reader sees it: no scripts, styles or tags."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"<[^>]+>", " ", html)


@pytest.fixture
def bounced(api, event_id, template_id, settings) -> Delivery:
    """A live email the sandbox's lifecycle bounced ("550 5.1.1 No such user")."""
    settings.HERALD_SANDBOX_DELAY_SECONDS = 0
    settings.HERALD_EMAIL_PROVIDER = "sandbox"
    api.post("/checkin/v1/api/guest", guest(event_id, template_id, email="bounce@x.example"))
    delivery = Delivery.objects.get(recipient="bounce@x.example")
    assert delivery.status == "bounced"
    return delivery


def test_a_delivery_page_is_headed_by_what_it_is_and_tells_its_history_in_words(keys, bounced):
    page = _owner(keys).get(reverse("admin:comms_delivery_change", args=[bounced.pk]))
    html = page.content.decode()
    headings = [" ".join(_visible(h).split()) for h in re.findall(r"<h1.*?</h1>", html, re.S)]
    assert any(h.startswith("Email to bounce@x.example, ") for h in headings), headings
    assert not [h for h in headings if str(bounced.pk) in h]  # named, not numbered
    text = " ".join(_visible(html).split())
    assert "Bounced: the mailbox does not exist" in text  # the history, a sentence a line
    assert "Sent to the mail provider" in text
    assert "comms.bounced" not in text and '"reason"' not in html  # no event ids, no JSON
    for word in JARGON:
        assert word not in text, word
    assert "Save" not in re.findall(r'<input[^>]+type="submit"[^>]*value="([^"]+)"', html)


def test_the_delivery_list_says_when_to_whom_and_what_became_of_it(keys, bounced):
    page = _owner(keys).get(reverse("admin:comms_delivery_changelist"))
    table = _visible(re.search(r'<table id="result_list".*?</table>', page.content.decode(),
                               re.S).group(0))
    text = " ".join(table.split())
    assert "bounce@x.example" in text and "Bounced" in text and "Email" in text
    assert str(bounced.pk) not in text  # no UUID column
    assert "Created" in text and "Sending service" not in text


def test_channels_are_labelled_in_words_everywhere():
    assert set(CHANNEL_LABELS) == set(CHANNELS)
    labels = dict(CHANNEL_CHOICES)
    assert (labels["sms"], labels["inapp"], labels["whatsapp"]) == ("SMS", "In-app", "WhatsApp")
    for model in (Delivery, Suppression):
        assert dict(model._meta.get_field("channel").choices)["sms"] == "SMS"


def test_the_channel_filter_and_integration_form_say_sms(keys, bounced):
    client = _owner(keys)
    listing = _visible(client.get(reverse("admin:comms_delivery_changelist")).content.decode())
    assert "SMS" in listing and "In-app" in listing and "Sms" not in listing
    form = client.get(reverse("admin:comms_integration_add")).content.decode()
    assert "Twilio (SMS)" in form and "Amazon SNS (SMS)" in form and "Sending service" in form
    assert "twilio (sms)" not in form
    credentials = re.search(r'<textarea name="credentials"[^>]*>(.*?)</textarea>', form, re.S)
    assert credentials.group(1).strip() == ""  # an empty box, not "null"
    assert 'cols="30"' in credentials.group(0)  # 40 monospace columns overflow a phone


def test_the_dashboard_chart_scales_to_its_box(api, event_id, template_id, settings):
    settings.HERALD_SANDBOX_DELAY_SECONDS = 0
    settings.HERALD_EMAIL_PROVIDER = "sandbox"
    api.post("/checkin/v1/api/guest", guest(event_id, template_id, email="ok@x.example"))
    page = _owner(api.keys).get(reverse("admin:comms_dashboard_changelist")).content.decode()
    svg = re.search(r"<svg[^>]*>", page).group(0)
    assert "viewBox=" in svg and "width:100%" in svg
    assert not re.search(r'\swidth="\d+"', svg)  # a fixed width overflowed a phone (669 px)


def test_the_account_page_names_memberships_and_hides_the_key_hash(keys):
    client = _owner(keys)
    page = client.get(reverse("admin:accounts_account_change", args=[keys.account.pk]))
    html = page.content.decode()
    assert "olive (owner)" in html
    assert "Membership object" not in html
    # Whether a subscription key is set, not its 64-character hash (wider than a phone).
    assert keys.account.subscription_key_hash not in html and "Set (Herald keeps" in html


def test_template_channels_are_named_in_words():
    from templates.models import Channel

    assert dict(Channel.choices)["sms"] == "SMS" and dict(Channel.choices)["inapp"] == "In-app"
    assert dict(Channel.choices)["whatsapp"] == "WhatsApp"
