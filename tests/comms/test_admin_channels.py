"""The admin of issue 6/7 additions: integrations (credentials write-only, encrypted),
notification events with their templates, template edits bumping the version."""

import re

from django.test import Client
from django.urls import reverse

from accounts.models import Membership
from accounts.services import membership_add
from comms.models import Delivery, Integration
from templates.models import MessageTemplate, NotificationEvent, TemplateVersion


def _form(client: Client, url: str, **fields: str) -> dict[str, str]:
    """The change form's hidden inputs (inline management forms) with ``fields`` over them."""
    page = client.get(url).content.decode()
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))
    hidden.pop("csrfmiddlewaretoken", None)
    return {**hidden, **fields}


def _owner(keys) -> Client:
    membership = membership_add(account=keys.account, username="olive",
                                role=Membership.Role.OWNER)
    client = Client()
    client.force_login(membership.user)
    return client


def test_an_owner_adds_an_integration_whose_credentials_never_show(keys):
    client = _owner(keys)
    response = client.post(reverse("admin:comms_integration_add"), {
        "account": str(keys.account.id), "provider": "twilio", "name": "Main SMS",
        "priority": 0, "is_active": "on",
        "config": '{"from_number": "+15005550006"}',
        "credentials": '{"account_sid": "AC123", "auth_token": "tw-secret-token"}',
    }, follow=True)
    assert response.status_code == 200
    integration = Integration.objects.get()
    assert (integration.channel, integration.provider) == ("sms", "twilio")
    assert "tw-secret-token" not in integration.credentials_encrypted
    page = client.get(reverse("admin:comms_integration_change", args=[integration.pk]))
    assert b"tw-secret-token" not in page.content and b"AC123" not in page.content
    assert b"account_sid, auth_token" in page.content  # which ones are stored, not their values
    # Saving again with the box empty keeps the stored credentials.
    client.post(reverse("admin:comms_integration_change", args=[integration.pk]), {
        "account": str(keys.account.id), "provider": "twilio", "name": "Main SMS",
        "priority": 1, "is_active": "on", "config": '{"from_number": "+15005550006"}',
        "credentials": ""})
    integration.refresh_from_db()
    assert integration.priority == 1
    from common import crypto

    assert crypto.decrypt_json(integration.credentials_encrypted)["auth_token"] == (
        "tw-secret-token")


def test_unknown_integration_settings_are_refused(keys):
    client = _owner(keys)
    response = client.post(reverse("admin:comms_integration_add"), {
        "account": str(keys.account.id), "provider": "twilio", "priority": 0,
        "config": '{"colour": "red"}', "credentials": "{}"})
    assert response.status_code == 200
    assert b"Unknown settings for twilio: colour" in response.content
    assert not Integration.objects.exists()


def test_editing_a_template_bumps_its_version_and_checks_it(api, template_id):
    client = _owner(api.keys)
    url = reverse("admin:templates_messagetemplate_change", args=[template_id])
    form = {"id": template_id, "account": str(api.keys.account.id), "name": "Ticket",
            "channel": "email", "language": "en", "subject": "New {{ event.name }}",
            "html_body": "<p>x</p>", "text_body": "x"}
    client.post(url, _form(client, url, **form))
    assert MessageTemplate.objects.get(id=template_id).version == 2
    broken = client.post(url, _form(client, url, **{**form, "subject": "{{ oops"}))
    assert b"Line 1" in broken.content
    # A problem with no line (nesting too deep to compile) is named without a "Line None".
    deep = "{% if x %}" * 300 + "x" + "{% endif %}" * 300
    too_deep = client.post(url, _form(client, url, **{**form, "html_body": deep}))
    assert b"nest" in too_deep.content.lower() and b"Line None" not in too_deep.content
    template = MessageTemplate.objects.get(id=template_id)
    assert (template.version, template.subject) == (2, "New {{ event.name }}")


def test_two_staff_editing_one_template_at_once_get_two_versions(api, template_id):
    """Both loaded version 1 before either saved: the edits become versions 2 and 3, each
    with its own content in the history (one number for both would let workers that cached
    (id, 2) keep rendering the other edit)."""
    from django.contrib import admin
    from django.contrib.auth import get_user_model
    from django.test import RequestFactory

    _owner(api.keys)
    model_admin = admin.site._registry[MessageTemplate]
    request = RequestFactory().post("/")
    request.user = get_user_model().objects.get(username="olive")
    loaded = [MessageTemplate.objects.get(id=template_id) for _ in range(2)]
    for copy, text in zip(loaded, ["First edit", "Second edit"], strict=True):
        form = model_admin.get_form(request, copy, change=True)(
            data={"id": template_id, "account": str(api.keys.account.id), "name": "Ticket",
                  "channel": "email", "language": "en", "subject": "Ticket",
                  "html_body": "", "text_body": text},
            instance=copy)
        assert form.is_valid(), form.errors
        model_admin.save_model(request, form.save(commit=False), form, change=True)
    template = MessageTemplate.objects.get(id=template_id)
    assert (template.version, template.text_body) == (3, "Second edit")
    history = dict(TemplateVersion.objects.filter(template_id=template_id)
                   .values_list("version", "text_body"))
    assert (history[2], history[3]) == ("First edit", "Second edit")


def test_a_form_opened_before_an_api_update_saves_a_new_version(api, template_id):
    """A name-only edit in a form loaded before the API changed the content still writes the
    form's content: that is a new version, not version 2 with other content than recorded."""
    from django.contrib import admin
    from django.contrib.auth import get_user_model
    from django.test import RequestFactory

    _owner(api.keys)
    model_admin = admin.site._registry[MessageTemplate]
    request = RequestFactory().post("/")
    request.user = get_user_model().objects.get(username="olive")
    stale = MessageTemplate.objects.get(id=template_id)
    api.put(f"/comms/v1/api/comms/template/{template_id}",
            {"name": "Ticket", "subject": "From the API", "textBody": "API text"})
    form = model_admin.get_form(request, stale, change=True)(
        data={"id": template_id, "account": str(api.keys.account.id), "name": "Renamed",
              "channel": "email", "language": "en", "subject": stale.subject,
              "html_body": stale.html_body, "text_body": stale.text_body}, instance=stale)
    assert form.is_valid(), form.errors
    model_admin.save_model(request, form.save(commit=False), form, change=True)
    template = MessageTemplate.objects.get(id=template_id)
    history = dict(TemplateVersion.objects.filter(template_id=template_id)
                   .values_list("version", "text_body"))
    assert (template.version, template.name) == (3, "Renamed")
    assert (history[2], history[3]) == ("API text", stale.text_body)


def test_editing_an_event_template_inline_bumps_its_version(keys):
    client = _owner(keys)
    prefix = "templates"
    fields = {"account": str(keys.account.id), "identifier": "order.confirmed",
              "name": "Order confirmed", "description": "", "channels": '["email"]',
              "default_language": "en", f"{prefix}-MIN_NUM_FORMS": "0",
              f"{prefix}-MAX_NUM_FORMS": "1000", f"{prefix}-0-channel": "email",
              f"{prefix}-0-language": "en", f"{prefix}-0-subject": "Order",
              f"{prefix}-0-html_body": ""}
    client.post(reverse("admin:templates_notificationevent_add"), {
        **fields, f"{prefix}-TOTAL_FORMS": "1", f"{prefix}-INITIAL_FORMS": "0",
        f"{prefix}-0-text_body": "Hi {{name | Guest}}"})
    event = NotificationEvent.objects.get()
    template = event.templates.get()
    client.post(reverse("admin:templates_notificationevent_change", args=[event.pk]), {
        **fields, f"{prefix}-TOTAL_FORMS": "1", f"{prefix}-INITIAL_FORMS": "1",
        f"{prefix}-0-id": str(template.id), f"{prefix}-0-event": str(event.pk),
        f"{prefix}-0-text_body": "Hello {{name | Guest}}"})
    template.refresh_from_db()
    assert (template.version, template.text_body) == (2, "Hello {{name | Guest}}")
    assert list(TemplateVersion.objects.filter(template=template).order_by("version")
                .values_list("version", "text_body")) == [
        (1, "Hi {{name | Guest}}"), (2, "Hello {{name | Guest}}")]


def test_an_event_is_created_with_its_templates_in_the_admin(keys):
    client = _owner(keys)
    prefix = "templates"
    response = client.post(reverse("admin:templates_notificationevent_add"), {
        "account": str(keys.account.id), "identifier": "order.confirmed",
        "name": "Order confirmed", "description": "", "channels": '["email"]',
        "default_language": "en",
        f"{prefix}-TOTAL_FORMS": "1", f"{prefix}-INITIAL_FORMS": "0",
        f"{prefix}-MIN_NUM_FORMS": "0", f"{prefix}-MAX_NUM_FORMS": "1000",
        f"{prefix}-0-channel": "email", f"{prefix}-0-language": "en",
        f"{prefix}-0-subject": "Order {{payload.orderNumber}}",
        f"{prefix}-0-text_body": "Hi {{name | Guest}}", f"{prefix}-0-html_body": "",
    }, follow=True)
    assert response.status_code == 200
    event = NotificationEvent.objects.get()
    template = event.templates.get()
    assert (template.account_id, template.channel) == (keys.account.id, "email")
    assert template.name == "order.confirmed (email, en)"


def test_template_history_says_who_changed_what(api, template_id):
    api.put(f"/comms/v1/api/comms/template/{template_id}",
            {"name": "Ticket", "subject": "Changed {{ event.name }}", "textBody": "Hi"})
    client = _owner(api.keys)
    url = reverse("admin:templates_messagetemplate_change", args=[template_id])
    client.post(url, _form(client, url, id=template_id, account=str(api.keys.account.id),
                           name="Ticket", channel="email", language="en",
                           subject="Changed {{ event.name }}", html_body="",
                           text_body="Hello there"))
    versions = list(TemplateVersion.objects.filter(template_id=template_id)
                    .order_by("version").values_list("version", "changed_by"))
    assert [v for v, _ in versions] == [1, 2, 3]
    assert versions[0][1].startswith("API key live") and versions[1][1].startswith("API key")
    assert versions[2][1] == "olive (admin)"
    page = client.get(url).content.decode()
    assert "olive (admin)" in page
    assert "-Hi" in page and "+Hello there" in page


def test_send_a_test_to_me(api, template_id, django_capture_on_commit_callbacks):
    client = _owner(api.keys)
    changelist = reverse("admin:templates_messagetemplate_changelist")
    said = client.post(changelist, {"action": "send_test_to_me",
                                    "_selected_action": [template_id]}, follow=True)
    assert b"has no email address" in said.content
    from django.contrib.auth import get_user_model

    get_user_model().objects.filter(username="olive").update(email="olive@acme.example")
    with django_capture_on_commit_callbacks(execute=True):
        said = client.post(changelist, {"action": "send_test_to_me",
                                        "_selected_action": [template_id]}, follow=True)
    assert b"Test sent to olive@acme.example" in said.content
    delivery = Delivery.objects.get(recipient="olive@acme.example")
    assert delivery.status == "sent"
    assert delivery.subject == "Your ticket for Sample Event"


def test_deliveries_filter_by_event_and_template_of_ones_own_account(api, other_api,
                                                                    event_id, template_id):
    from tests.conftest import guest

    api.post("/checkin/v1/api/guest", guest(event_id, template_id, email="a@example.com"))
    second = api.post("/checkin/v1/api/event", {"name": "Autumn Ball"}).json()["id"]
    api.post("/checkin/v1/api/guest", guest(second, template_id, email="b@example.com"))
    theirs = other_api.post("/checkin/v1/api/event", {"name": "Their Gala"}).json()
    client = _owner(api.keys)
    url = reverse("admin:comms_delivery_changelist")
    page = client.get(url).content.decode()
    assert "Spring Gala" in page and "Their Gala" not in page
    filtered = client.get(url, {"attendee__event__id__exact": event_id,
                                "template__id__exact": template_id}).content.decode()
    assert "a@example.com" in filtered and "b@example.com" not in filtered
    assert "Their Gala" not in client.get(url, {"attendee__event__id__exact": theirs["id"]}
                                          ).content.decode()


def test_dashboard_charts_ones_own_accounts_and_events(api, sandbox_api, other_api, event_id,
                                                       template_id, settings):
    from tests.conftest import guest

    settings.HERALD_SANDBOX_DELAY_SECONDS = 0
    settings.HERALD_EMAIL_PROVIDER = "sandbox"  # live sends with the sandbox's lifecycle
    api.post("/checkin/v1/api/guest", guest(event_id, template_id, email="ok@x.example"))
    api.post("/checkin/v1/api/guest", guest(event_id, template_id, email="bounce@x.example"))
    # A test key's rehearsal is not live traffic: the dashboard does not count it.
    sandbox_api.post("/checkin/v1/api/guest", guest(event_id, template_id,
                                                    email="bounce@x.example"))
    theirs = other_api.post("/checkin/v1/api/event", {"name": "Their Gala"}).json()
    their_template = other_api.post("/comms/v1/api/comms/template", {
        "name": "T", "subject": "S", "textBody": "B"}).json()
    other_api.post("/checkin/v1/api/guest", guest(theirs["id"], their_template["id"]))
    client = _owner(sandbox_api.keys)
    page = client.get(reverse("admin:comms_dashboard_changelist")).content.decode()
    assert "Account: Acme Events" in page and "Event: Spring Gala" in page
    assert "Their Gala" not in page and "Other Org" not in page
    assert "<svg" in page and "1 failed" in page and "Opened: <strong>1</strong>" in page


def test_an_owner_creates_a_key_shown_once_and_revokes_it(keys):
    from accounts.models import ApiKey

    client = _owner(keys)
    said = client.post(reverse("admin:accounts_account_changelist"),
                       {"action": "create_test_key", "_selected_action": [str(keys.account.id)]},
                       follow=True).content.decode()
    raw = re.search(r"(test_[A-Za-z0-9_-]{20,})", said).group(1)
    key = ApiKey.objects.get(name__startswith="test key by olive")
    assert raw not in key.key_hash
    api = Client()
    assert api.get("/v1/webhooks", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 200
    listing = client.get(reverse("admin:accounts_apikey_changelist")).content.decode()
    assert key.prefix in listing and raw not in listing
    client.post(reverse("admin:accounts_apikey_changelist"),
                {"action": "revoke_keys", "_selected_action": [str(key.pk)]})
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert api.get("/v1/webhooks", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 401


def test_an_event_without_a_default_language_template_is_refused_in_the_admin(keys):
    client = _owner(keys)
    prefix = "templates"
    response = client.post(reverse("admin:templates_notificationevent_add"), {
        "account": str(keys.account.id), "identifier": "order.shipped", "name": "Shipped",
        "description": "", "channels": '["email", "sms"]', "default_language": "en",
        f"{prefix}-TOTAL_FORMS": "1", f"{prefix}-INITIAL_FORMS": "0",
        f"{prefix}-MIN_NUM_FORMS": "0", f"{prefix}-MAX_NUM_FORMS": "1000",
        f"{prefix}-0-channel": "email", f"{prefix}-0-language": "fr",
        f"{prefix}-0-subject": "Expédiée", f"{prefix}-0-text_body": "Bonjour",
        f"{prefix}-0-html_body": "",
    })
    assert response.status_code == 200
    assert b"missing: email, sms" in response.content
    assert not NotificationEvent.objects.exists()
    bad = client.post(reverse("admin:templates_notificationevent_add"), {
        "account": str(keys.account.id), "identifier": "no spaces", "name": "x",
        "channels": '["fax"]', "default_language": "en", f"{prefix}-TOTAL_FORMS": "0",
        f"{prefix}-INITIAL_FORMS": "0", f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000"})
    assert b"order.confirmed" in bad.content and b"distinct channels" in bad.content
