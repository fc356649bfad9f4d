"""Tenancy in the admin, for every registered model: a staff user of account A never sees,
opens or picks an object of account B; superusers see both; roles limit what staff may do."""

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from accounts.admin_base import AccountScopedAdmin
from accounts.models import Membership
from accounts.services import account_create, membership_add
from comms.callbacks.services import callback_batch_store
from comms.channels import integration_save
from contacts.services import contact_upsert
from domains.services import sender_domain_create
from templates.events import TemplateIn, event_save
from tests.conftest import TICKET, guest, make_client
from webhooks.services import endpoint_create, endpoint_send_test


def _populate(keys, django_capture_on_commit_callbacks, settings, name: str) -> None:
    """Every kind of object, made the way users make them."""
    client = make_client(keys, test_mode=True)
    with django_capture_on_commit_callbacks(execute=True):
        # Configuration (events, templates) is made with live keys.
        event = make_client(keys).post("/checkin/v1/api/event", {"name": name},
                                       format="json").json()
        template = make_client(keys).post("/comms/v1/api/comms/template", TICKET,
                                          format="json").json()
        for email in (f"{name}@example.com", f"bounce-{name}@example.com"):
            client.post("/checkin/v1/api/guest", guest(event["id"], template["id"],
                                                        email=email), format="json")
        endpoint, _ = endpoint_create(account=keys.account, url="http://127.0.0.1:9/hook")
        endpoint_send_test(endpoint=endpoint)
    sender_domain_create(account=keys.account, domain=f"{name}.example.com")
    contact_upsert(account=keys.account, data={"email": f"{name}@contacts.example",
                                               "pushToken": "ExponentPushToken[x]"})
    integration_save(account=keys.account, provider="twilio", config={"from_number": "+1500555"},
                     credentials={"account_sid": "AC1", "auth_token": name})
    event_save(account=keys.account, identifier=f"{name}.event", name=name, channels=["email"],
               templates=[TemplateIn("email", "en", "Hi", "Hello", "")])


@pytest.fixture
def two_accounts(db, settings, django_capture_on_commit_callbacks):
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = True
    settings.HERALD_DOMAIN_PROVIDER = "dev"
    a, b = account_create(name="Alpha"), account_create(name="Beta")
    _populate(a, django_capture_on_commit_callbacks, settings, "alpha")
    _populate(b, django_capture_on_commit_callbacks, settings, "beta")
    with django_capture_on_commit_callbacks(execute=True):
        callback_batch_store(provider="sendgrid", body="[]")
    return a, b


def _login(username: str, *, account=None, role="owner", superuser=False) -> Client:
    if superuser:
        get_user_model().objects.create_superuser(username, password="pw-123456789")
    else:
        membership_add(account=account, username=username, role=role, password="pw-123456789")
    client = Client()
    client.force_login(get_user_model().objects.get(username=username))
    return client


def _scoped_admins():
    for model, model_admin in admin.site._registry.items():
        if isinstance(model_admin, AccountScopedAdmin):
            yield model, model_admin


def _rows(model, model_admin, account):
    if not model_admin.account_path:
        return model._default_manager.filter(pk=account.id)
    return model._default_manager.filter(**{model_admin.account_path: account})


def test_every_model_admin_is_account_scoped():
    ours = {"accounts", "guests", "templates", "comms", "domains", "webhooks", "contacts"}
    unscoped = [m.__name__ for m, a in admin.site._registry.items()
                if m._meta.app_label in ours and not isinstance(a, AccountScopedAdmin)]
    assert unscoped == []


def test_staff_of_a_never_sees_or_opens_b(two_accounts):
    a, b = two_accounts
    client = _login("alice", account=a.account)
    checked = 0
    for model, model_admin in _scoped_admins():
        info = (model._meta.app_label, model._meta.model_name)
        changelist = client.get(reverse("admin:{}_{}_changelist".format(*info)))
        if not model_admin.has_module_permission_for_roles({"owner"}):
            assert changelist.status_code == 403
            continue
        assert changelist.status_code == 200, (model, changelist.status_code)
        if "cl" not in changelist.context:  # the dashboard: a page of charts, not a list
            assert "Beta" not in changelist.content.decode(), model
            continue
        visible = {str(pk) for pk in changelist.context["cl"].queryset.values_list(
            "pk", flat=True)}
        theirs = {str(pk) for pk in _rows(model, model_admin, b.account).values_list(
            "pk", flat=True)}
        assert not visible & theirs, model
        # Nor in the filter sidebars (a related filter lists only what A's rows point at).
        assert "beta" not in changelist.content.decode().lower(), model
        for pk in list(theirs)[:3]:
            change = client.get(reverse("admin:{}_{}_change".format(*info), args=[pk]))
            assert change.status_code in (302, 404), (model, change.status_code)
            checked += 1
    assert checked >= 10


def test_superuser_sees_both(two_accounts):
    _a, _b = two_accounts
    client = _login("root", superuser=True)
    response = client.get(reverse("admin:guests_event_changelist"))
    names = {e.name for e in response.context["cl"].queryset}
    assert names == {"alpha", "beta"}


def test_foreign_key_choices_are_scoped(two_accounts):
    a, _b = two_accounts
    client = _login("alice", account=a.account)
    response = client.get(reverse("admin:templates_messagetemplate_add"))
    choices = response.context["adminform"].form.fields["account"].queryset
    assert list(choices) == [a.account]


def test_support_can_look_but_not_change(two_accounts):
    a, _ = two_accounts
    client = _login("sam", account=a.account, role=Membership.Role.SUPPORT)
    event = a.account.events.get()
    url = reverse("admin:guests_event_change", args=[event.pk])
    assert client.get(url).status_code == 200
    response = client.post(url, {"account": a.account.pk, "name": "renamed"})
    assert response.status_code == 403
    event.refresh_from_db()
    assert event.name == "alpha"


def test_a_user_without_membership_sees_nothing(two_accounts):
    nobody = get_user_model().objects.create_user("nobody", password="pw-123456789",
                                                  is_staff=True)
    client = Client()
    client.force_login(nobody)
    assert client.get(reverse("admin:guests_event_changelist")).status_code == 403


def test_the_role_in_the_objects_own_account_decides(two_accounts):
    """Owner of Alpha and support in Beta: may change Alpha's event, not Beta's."""
    a, b = two_accounts
    client = _login("carol", account=a.account, role=Membership.Role.OWNER)
    membership_add(account=b.account, username="carol", role=Membership.Role.SUPPORT)
    beta_event = b.account.events.get()
    url = reverse("admin:guests_event_change", args=[beta_event.pk])
    assert client.get(url).status_code == 200  # support may look
    response = client.post(url, {"account": b.account.pk, "name": "renamed"})
    assert response.status_code == 403
    beta_event.refresh_from_db()
    assert beta_event.name == "beta"
    assert b'name="_save"' not in client.get(url).content  # read-only there
    alpha_event = a.account.events.get()
    page = client.get(reverse("admin:guests_event_change", args=[alpha_event.pk]))
    assert b'name="_save"' in page.content  # an owner's own account: editable
