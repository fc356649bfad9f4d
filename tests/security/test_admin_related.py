"""Foreign keys in the admin's forms: an object of account A never points at another account's
object, whatever accounts the user belongs to.

Built from the admin registry: every add and change form (and inline form) of every Herald
admin, every foreign-key or many-to-many field to an account-owned model, given the other
account's object: the field is refused and nothing is saved. Plus the two reported cases
(support in A and owner of B planted a guest in A's event and a template on A's notification
event; staff of B did the same through the change form).
"""

import uuid
from typing import Any

import pytest
from django.contrib import admin
from django.forms import ModelChoiceField, ModelMultipleChoiceField
from django.test import Client, RequestFactory

from accounts.admin_base import AccountScopedAdmin, SameAccountRelations, _account_of
from accounts.models import Account
from accounts.services import membership_add
from guests.bulk import bulk_send_audience
from guests.models import Attendee, Event
from templates.events import event_template
from templates.models import MessageTemplate
from tests.security.test_admin_tenancy import _rows, _scoped_admins, two_accounts  # noqa: F401

REFUSED = "is not in"


def _request(user) -> Any:
    request = RequestFactory().post("/admin/")
    request.user = user
    return request


def _pick(field: ModelChoiceField, account: Account) -> Any:
    """An object among ``field``'s choices that belongs to ``account`` (or None)."""
    for candidate in field.queryset[:200]:
        if _account_of(candidate, admin.site) == account.pk:
            return candidate
    return None


def _value(field: ModelChoiceField, obj: Any) -> Any:
    key = field.to_field_name or "pk"
    value = str(getattr(obj, key))
    return [value] if isinstance(field, ModelMultipleChoiceField) else value


def _account_fields(form_class: type, chooser: str | None) -> list[tuple[str, Any]]:
    fields = []
    for name, field in form_class.base_fields.items():
        if name == chooser or not isinstance(field, ModelChoiceField):
            continue
        model = field.queryset.model
        if model is Account or _owned(model):
            fields.append((name, field))
    return fields


def _owned(model: type) -> bool:
    model_admin = admin.site._registry.get(model)
    return (isinstance(model_admin, AccountScopedAdmin) and bool(model_admin.account_path)) \
        or any(f.name == "account" for f in model._meta.concrete_fields)


def _check(form_class, *, instance, data, name, field, a, b, failures, where) -> None:
    """``name`` given B's object is refused; given A's object, not by this check."""
    foreign, own = _pick(field, b), _pick(field, a)
    if foreign is None:
        failures.append(f"{where}.{name}: no object of B among the choices to try")
        return
    form = form_class(data={**data, name: _value(field, foreign)}, instance=instance)
    if form.is_valid() or not any(REFUSED in e for e in form.errors.get(name, [])):
        failures.append(f"{where}.{name}: B's {foreign!r} accepted ({dict(form.errors)})")
    if own is not None:
        form = form_class(data={**data, name: _value(field, own)}, instance=instance)
        form.is_valid()
        if any(REFUSED in e for e in form.errors.get(name, [])):
            failures.append(f"{where}.{name}: A's own {own!r} refused")


def test_every_form_refuses_another_accounts_related_object(two_accounts):  # noqa: F811
    """The user is owner of both accounts (every choice of both is offered): roles allow
    everything, only the accounts differ."""
    a, b = (keys.account for keys in two_accounts)
    user = membership_add(account=a, username="both", role="owner").user
    membership_add(account=b, username="both", role="owner")
    request = _request(user)
    checked, failures = [], []
    for model, model_admin in _scoped_admins():
        label = model._meta.label
        if not model_admin.has_module_permission_for_roles({"owner"}):
            continue  # superusers' only (provider traffic)
        chooser = model_admin.account_path.split("__")[0] or None
        row = _rows(model, model_admin, a).first()
        forms = []
        if model_admin.has_add_permission(request):
            forms.append(("add", model_admin.get_form(request, None, change=False), None))
        if row is not None and model_admin.has_change_permission(request, row):
            forms.append(("change", model_admin.get_form(request, row, change=True), row))
        for kind, form_class, instance in forms:
            assert issubclass(form_class, SameAccountRelations), (label, kind)
            data = {}
            if chooser in form_class.base_fields:
                data[chooser] = _value(form_class.base_fields[chooser],
                                       _pick(form_class.base_fields[chooser], a))
            for name, field in _account_fields(form_class, chooser):
                checked.append(f"{label}.{name} ({kind})")
                _check(form_class, instance=instance, data=data, name=name, field=field,
                       a=a, b=b, failures=failures, where=f"{label} {kind}")
        for inline in model_admin.get_inline_instances(request, row):
            formset = inline.get_formset(request, row)
            assert issubclass(formset.form, SameAccountRelations), (label, inline)
            for name, field in _account_fields(formset.form, formset.fk.name):
                checked.append(f"{label} inline {inline.model._meta.label}.{name}")
                prefix = formset.get_default_prefix()
                # B's object: among the choices, or (an inline offering only the row's own
                # account's, as the reminders' templates) posted anyway by hand.
                foreign = _pick(field, b) or next(
                    (o for o in field.queryset.model._default_manager.all()[:200]
                     if _account_of(o, admin.site) == b.pk), None)
                assert foreign is not None, f"{label} inline {name}: no object of B to try"
                form = formset(data={f"{prefix}-TOTAL_FORMS": "1",
                                     f"{prefix}-INITIAL_FORMS": "0",
                                     f"{prefix}-0-{name}": _value(field, foreign)},
                               instance=row).forms[0]
                errors = form.errors.get(name, [])
                if form.is_valid() or not any(REFUSED in e or "valid choice" in e
                                              for e in errors):
                    failures.append(f"{label} inline {name}: B's object accepted")
    assert not failures, failures
    # the reported fields are among those checked (the registry walk found them)
    assert "guests.Attendee.event (add)" in checked
    # A template's notification event is no field of the template form any more (#18: edited
    # from the notification event's page, through its inline, checked above).
    template_admin = admin.site._registry[MessageTemplate]
    assert "event" not in template_admin.get_form(request, None, change=False).base_fields


@pytest.fixture
def mallory(two_accounts):  # noqa: F811
    """Support in A, owner of B: may add to B, only look at A."""
    a, b = (keys.account for keys in two_accounts)
    user = membership_add(account=a, username="mallory", role="support").user
    membership_add(account=b, username="mallory", role="owner")
    client = Client()
    client.force_login(user)
    return a, b, client


def _errors(response) -> str:
    return response.content.decode()


def test_support_in_a_cannot_add_a_guest_to_as_event(mallory):
    a, b, client = mallory
    event_a = a.events.get()
    response = client.post("/admin/guests/attendee/add/", {
        "id": str(uuid.uuid4()), "account": str(b.pk), "event": str(event_a.pk),
        "first_name": "Eve", "last_name": "X", "email": "eve@evil.example",
        "correlation_id": "x"})
    assert response.status_code == 200 and REFUSED in _errors(response)
    assert not Attendee.objects.filter(email="eve@evil.example").exists()
    template = a.templates.filter(event__isnull=True).first()
    audience = bulk_send_audience(event=Event.objects.get(pk=event_a.pk), template=template,
                                  audience="all")
    assert not audience.filter(email="eve@evil.example").exists()


def test_support_in_a_cannot_attach_a_template_to_as_notification_event(mallory):
    a, b, client = mallory
    event = a.notification_events.get()
    before = MessageTemplate.objects.count()
    response = client.post("/admin/templates/messagetemplate/add/", {
        "id": str(uuid.uuid4()), "account": str(b.pk), "event": str(event.pk),
        "name": "evil", "channel": "email", "language": "fr", "subject": "Reset",
        "html_body": "<a href='https://evil.example'>click</a>", "text_body": "evil",
        "versions-TOTAL_FORMS": "0", "versions-INITIAL_FORMS": "0"})
    # The template form has no notification-event field (#18): the posted one is ignored, so
    # at most a plain template of B is made, never one attached to A's event.
    assert response.status_code in (200, 302)
    assert not MessageTemplate.objects.filter(event=event, account=b).exists()
    assert MessageTemplate.objects.filter(event=event).count() == \
        MessageTemplate.objects.filter(event=event, account=a).count()
    assert MessageTemplate.objects.count() <= before + 1
    assert event_template(event=event, channel="email", language="fr").account_id == a.pk


def test_staff_of_b_cannot_move_bs_guest_into_as_event(two_accounts):  # noqa: F811
    a, b = (keys.account for keys in two_accounts)
    user = membership_add(account=b, username="bstaff", role="staff").user
    membership_add(account=a, username="bstaff", role="support")
    client = Client()
    client.force_login(user)
    guest_b, event_a = b.attendees.first(), a.events.get()
    url = f"/admin/guests/attendee/{guest_b.pk}/change/"
    page = client.get(url)
    assert page.status_code == 200
    response = client.post(url, {
        "id": str(guest_b.pk), "account": str(b.pk), "event": str(event_a.pk), "first_name": "Eve",
        "last_name": "X", "email": guest_b.email, "correlation_id": "x"})
    assert response.status_code == 200 and REFUSED in _errors(response)
    guest_b.refresh_from_db()
    assert guest_b.event.account_id == b.pk
