"""Roles in the admin: every action and custom admin page declares the permission it needs,
and the user's role in the account of *each object it touches* decides, never the user's role
in another account.

The matrix is built from the admin registry itself: every action of every Herald admin
(Django's ``delete_selected`` included) by role by whose rows, and every custom admin page by
method by role by whose object. A new action or page without a declared permission fails
``test_every_action_and_custom_page_declares_its_permission`` (and ``manage.py check``).

Each user has the role under test in account A, is owner of account B, and has nothing in C
(the reported case: owner of B and support in A created a live admin key for A, revealed and
rotated A's webhook secret).
"""

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.db import connection, transaction
from django.http import HttpRequest
from django.test import Client, TestCase, override_settings
from django.urls import path, reverse

from accounts.admin_base import CAPABILITIES, AccountScopedAdmin
from accounts.models import Account, ApiKey, Membership
from accounts.services import account_create, membership_add
from comms.callbacks.services import callback_batch_store
from comms.queueing import kick_taken
from config.celery import app as celery_app
from guests import bulk, imports
from guests.models import BulkSend, GuestImport
from tests.conftest import guest, make_client
from tests.security.test_admin_tenancy import _populate
from webhooks.models import Endpoint
from webhooks.services import endpoint_secret_reveal

ROLES = (Membership.Role.OWNER, Membership.Role.STAFF, Membership.Role.SUPPORT)
OURS = {"accounts", "guests", "contacts", "templates", "domains", "comms", "emails",
        "webhooks", "axes"}
REFUSALS = ("Nothing was done:", "No action selected.", "Items must be selected", "Refused:")
CSV = "id,firstName,lastName,email\n{id},Ann,Lee,ann-{name}@example.com\n"


def _scoped_admins() -> Iterator[tuple[type, AccountScopedAdmin]]:
    for model, model_admin in sorted(admin.site._registry.items(),
                                     key=lambda item: item[0]._meta.label):
        if isinstance(model_admin, AccountScopedAdmin):
            yield model, model_admin


def _actions() -> list[tuple[str, str]]:
    return [(model._meta.label, name) for model, model_admin in _scoped_admins()
            for _, name, _ in model_admin._get_base_actions()]


def _standard_url_names(model_admin: AccountScopedAdmin) -> set:
    return {pattern.name for pattern in admin.ModelAdmin.get_urls(model_admin)}


def _custom_pages() -> list[tuple[str, str, str]]:
    """(model label, URL name, method) of every custom admin page and the methods it takes."""
    pages = []
    for model, model_admin in _scoped_admins():
        standard = _standard_url_names(model_admin)
        for pattern in model_admin.get_urls():
            if pattern.name in standard:
                continue
            for method in getattr(pattern.callback, "admin_permissions", {"GET": None}):
                if method != "HEAD":
                    pages.append((model._meta.label, pattern.name, method))
    return pages


# --- the world: accounts A (the role under test), B (owner), C (none) --------------------

@dataclass
class World:
    accounts: dict[str, Account]  # "A", "B", "C"
    users: dict[str, Any]  # role -> user (that role in A, owner of B)
    objects: dict[str, dict[str, Any]]  # account key -> event, import, job, domain


def _account(name: str) -> tuple[Account, dict[str, Any]]:
    keys = account_create(name=name)
    capture = TestCase.captureOnCommitCallbacks
    _populate(keys, capture, None, name.lower())
    event = keys.account.events.get()
    template = keys.account.templates.filter(event__isnull=True).get()
    with capture(execute=True):
        # A live send, through the embedded outbox provider (the Outbox admin's rows).
        make_client(keys).post("/checkin/v1/api/guest", guest(
            str(event.pk), str(template.pk), email=f"live-{name}@example.com"), format="json")
        guest_import = imports.guest_import_create(
            event=event, user=None, filename="g.csv",
            data=CSV.format(id=uuid.uuid4(), name=name).encode())
        callback_batch_store(provider="sendgrid", body="[]")  # (superusers' only)
        job, _ = bulk.bulk_send_create(
            event=event, template_id=template.pk, audience=BulkSend.Audience.ALL,
            mode="test", token=uuid.uuid4(), user=None)
    return keys.account, {"event": event, "import": GuestImport.objects.get(pk=guest_import.pk),
                          "job": job, "domain": keys.account.sender_domain}


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker) -> Iterator[World]:
    """Built once for the module inside a transaction that is rolled back at its end; each
    test runs in a savepoint of it (pytest-django's ``db``)."""
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = celery_app.conf.task_eager_propagates = True
    with django_db_blocker.unblock(), override_settings(
            WEBHOOKS_ALLOW_PRIVATE_URLS=True, HERALD_DOMAIN_PROVIDER="dev",
            HERALD_API_KEY_CACHE_SECONDS=0, HERALD_RATE_LIMIT_LIVE=0, HERALD_RATE_LIMIT_TEST=0,
            HERALD_DAILY_QUOTA_LIVE=0, HERALD_DAILY_QUOTA_TEST=0,
            HERALD_AUTH_FAILURE_LIMIT=1000):
        kick_taken()
        atomic = transaction.atomic()
        atomic.__enter__()
        try:
            accounts, objects = {}, {}
            for key, name in (("A", "Alpha"), ("B", "Beta"), ("C", "Gamma")):
                accounts[key], objects[key] = _account(name)
            users = {}
            for role in ROLES:
                member = membership_add(account=accounts["A"], username=f"{role}-user",
                                        role=role)
                membership_add(account=accounts["B"], username=f"{role}-user")
                member.user.email = f"{role}@example.com"
                member.user.save(update_fields=["email"])
                users[role] = member.user
            yield World(accounts, users, objects)
        finally:
            transaction.set_rollback(True)
            atomic.__exit__(None, None, None)
            celery_app.conf.task_always_eager = eager


@pytest.fixture
def as_user(world, db, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = True
    settings.HERALD_DOMAIN_PROVIDER = "dev"

    def login(role: str) -> Client:
        client = Client()
        client.force_login(world.users[role])
        return client

    return login


def _fingerprint() -> Any:
    """Every row of Herald's tables (and users): whatever an action writes changes it, in
    one query (a digest per table)."""
    models = [model for model in [*apps.get_models(), get_user_model()]
              if model._meta.app_label in OURS and not model._meta.proxy]
    digests = [f"(SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) "
               f"FROM {connection.ops.quote_name(model._meta.db_table)} t)" for model in models]
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + " || ".join(digests))
        return cursor.fetchone()[0]


def _rows(model, model_admin: AccountScopedAdmin, accounts: list[Account]) -> list[str]:
    rows = model_admin.get_queryset(_superuser_request())
    if model_admin.has_module_permission_for_roles(set(ROLES)):  # else: superusers' only
        lookup = f"{model_admin.account_path}__in" if model_admin.account_path else "pk__in"
        rows = rows.filter(**{lookup: [account.pk for account in accounts]})
    return [str(pk) for pk in rows.values_list("pk", flat=True)]


def _superuser_request() -> HttpRequest:
    request = HttpRequest()
    request.user = get_user_model()(is_superuser=True, is_staff=True, is_active=True)
    return request


def _post_action(client: Client, url: str, action: str, pks: list[str], capture) -> list[str]:
    with capture(execute=False):
        response = client.post(url, {"action": action, "_selected_action": pks, "post": "yes"})
    if response.status_code not in (200, 302):
        return [f"Refused: {response.status_code}"]
    said = [str(m) for m in get_messages(response.wsgi_request)]
    if b'id="shown-once"' in response.content:  # new keys and secrets: a page, no message
        said.append(f"Shown once: {response.content.decode()}")
    return said


POSSIBLE: dict[tuple, bool] = {}  # the world is the same in every test: asked once


def _possible(url: str, action: str, pks: list[str], capture) -> bool:
    """Whether a superuser's run of the action on these rows (rolled back) does something:
    some are refused to everyone (an import history is never deleted, nor a template that
    deliveries point at; the dashboard has no list to act on)."""
    if (url, action, *pks) not in POSSIBLE:
        root = get_user_model().objects.create_superuser("root-for-roles", password=None)
        client = Client()
        client.force_login(root)
        with transaction.atomic():
            before = _fingerprint()
            said = _post_action(client, url, action, pks, capture)
            changed = _fingerprint() != before
            transaction.set_rollback(True)
        refused = [m for m in said if m.startswith(REFUSALS)]
        POSSIBLE[(url, action, *pks)] = bool(pks) and not refused and bool(said or changed)
    return POSSIBLE[(url, action, *pks)]


# --- declarations ----------------------------------------------------------------------------

def test_every_action_and_custom_page_declares_its_permission():
    known = {*CAPABILITIES, "view", "change", "add", "delete"}
    assert len(_actions()) >= 30
    for model, model_admin in _scoped_admins():
        for func, name, _ in model_admin._get_base_actions():
            declared = set(getattr(func, "allowed_permissions", ()) or ())
            assert declared and declared <= known, (model, name, declared)
        assert [e for e in model_admin.check() if e.id.startswith("herald.")] == [], model
    pages = _custom_pages()
    assert {name for _, name, _ in pages} == set(PAGE_OBJECTS), (
        "a custom admin page without its row in PAGE_OBJECTS (add it, with its permission)")
    for model_label, name, method in pages:
        model_admin = admin.site._registry[apps.get_model(model_label)]
        callback = next(p.callback for p in model_admin.get_urls() if p.name == name)
        assert callback.admin_permissions.get(method), (name, method)


def test_an_undeclared_action_or_page_is_never_offered_and_fails_the_check(world, db):
    def undeclared(modeladmin, request, queryset):
        Account.objects.update(name="changed")  # would be a disaster

    class Careless(AccountScopedAdmin):
        account_path = ""
        actions = [undeclared]

        def get_urls(self):
            return [path("x/", self.admin_site.admin_view(lambda r: None), name="x"),
                    *super().get_urls()]

    careless = Careless(Account, admin.site)
    assert {e.id for e in careless.check()} >= {"herald.E001", "herald.E002"}
    request = _superuser_request()
    request.GET = {}
    assert "undeclared" not in careless.get_actions(request)


def test_role_names_in_capabilities_are_roles():
    assert set().union(*CAPABILITIES.values()) <= set(ROLES)
    assert CAPABILITIES["resend"] >= {Membership.Role.SUPPORT}  # support: look up and resend
    assert Membership.Role.SUPPORT not in CAPABILITIES["operate"] | CAPABILITIES["manage"]


# --- every action by role by whose rows ------------------------------------------------------

@pytest.mark.parametrize("target", ["role", "mixed", "foreign"])
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("model_label", "action"), _actions())
def test_action(world, as_user, django_capture_on_commit_callbacks, model_label, action, role,
                target):
    """Rows of A only ("role"), of A and B ("mixed"), of C ("foreign", invisible)."""
    model = apps.get_model(model_label)
    model_admin = admin.site._registry[model]
    func = dict((name, f) for f, name, _ in model_admin._get_base_actions())[action]
    permissions = func.allowed_permissions
    accounts = {"role": ["A"], "mixed": ["A", "B"], "foreign": ["C"]}[target]
    pks = _rows(model, model_admin, [world.accounts[key] for key in accounts])
    assert pks, f"no {model_label} rows of {accounts}: populate them"
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    capture = django_capture_on_commit_callbacks
    roles = frozenset.intersection(*(model_admin.roles_for(p) for p in permissions))
    possible = _possible(url, action, pks, capture)
    allowed = target != "foreign" and possible and role in roles
    secret = endpoint_secret_reveal(endpoint=Endpoint.objects.get(account=world.accounts["A"]))
    client = as_user(role)
    before = _fingerprint()

    said = _post_action(client, url, action, pks, capture)

    refused = [m for m in said if m.startswith(REFUSALS)]
    if allowed:
        assert not refused, said
        assert said or _fingerprint() != before, "the action did nothing"
        return
    assert _fingerprint() == before, f"{action} changed data for {role} on {target}"
    assert said == refused, said  # nothing but the refusal: no key, no secret shown
    assert not any(secret in m for m in said)
    if not (possible and roles):  # never offered: Django's own refusal, or none at all
        return
    if target == "foreign":
        assert said == ["Nothing was done: none of the selected rows is there for you any "
                        "more."]
    else:  # offered (they own B) but refused for A's rows
        assert len(said) == 1 and said[0].startswith("Nothing was done:"), said
        assert "Alpha" in said[0] and "Beta" not in said[0], said


def test_support_in_a_and_owner_of_b_cannot_create_a_key_for_a(world, as_user):
    """The reported case, end to end: nothing created, and the refusal names the account."""
    client = as_user(Membership.Role.SUPPORT)
    keys_before = ApiKey.objects.filter(account=world.accounts["A"]).count()
    response = client.post(reverse("admin:accounts_account_changelist"), {
        "action": "create_live_admin_key", "_selected_action": [world.accounts["A"].pk]},
        follow=True)
    said = [str(m) for m in get_messages(response.wsgi_request)]
    assert said == ["Nothing was done: “Create a admin key (shown once)” needs the owner role "
                    "in the account of every selected row, and your role in Alpha is not that."]
    assert ApiKey.objects.filter(account=world.accounts["A"]).count() == keys_before
    # The same user, on B where they are owner: the key is made (and shown once).
    response = client.post(reverse("admin:accounts_account_changelist"), {
        "action": "create_live_admin_key", "_selected_action": [world.accounts["B"].pk]},
        follow=True)
    assert b'id="shown-once"' in response.content and b"admin key for Beta" in response.content
    assert b"<code>live_" in response.content


def test_the_add_form_offers_only_accounts_where_the_role_may_add(world, as_user):
    client = as_user(Membership.Role.SUPPORT)
    page = client.get(reverse("admin:templates_messagetemplate_add"))
    assert list(page.context["adminform"].form.fields["account"].queryset) == [
        world.accounts["B"]]
    staff = as_user(Membership.Role.STAFF)
    for model in ("webhooks_endpoint", "domains_senderdomain"):  # the owner's to add
        page = staff.get(reverse(f"admin:{model}_add"))
        assert list(page.context["adminform"].form.fields["account"].queryset) == [
            world.accounts["B"]], model
    refused = staff.post(reverse("admin:webhooks_endpoint_add"), {
        "account": world.accounts["A"].pk, "url": "https://hooks.example.com/a",
        "enabled_events": ["comms.sent"], "is_active": "on"})
    assert refused.status_code == 200 and "account" in refused.context["adminform"].form.errors
    assert Endpoint.objects.filter(account=world.accounts["A"]).count() == 1


# --- every custom page by method by role by whose object ------------------------------------

PAGE_OBJECTS = {  # URL name -> the URL's arguments from an account's objects
    "guests_event_import_upload": lambda o: [o["event"].pk],
    "guests_event_import": lambda o: [o["event"].pk, o["import"].pk],
    "guests_event_import_progress": lambda o: [o["event"].pk, o["import"].pk],
    "guests_event_send_form": lambda o: [o["event"].pk],
    "guests_event_send": lambda o: [o["event"].pk, o["job"].pk],
    "guests_event_send_progress": lambda o: [o["event"].pk, o["job"].pk],
    "guests_event_send_cancel": lambda o: [o["event"].pk, o["job"].pk],
    "guests_event_sends": lambda o: [o["event"].pk],
    "guests_event_dashboard": lambda o: [o["event"].pk],
    "guests_event_door": lambda o: [o["event"].pk],
    "guests_event_door_search": lambda o: [o["event"].pk],
    "guests_event_door_check_in": lambda o: [o["event"].pk],
    "guests_event_door_counts": lambda o: [o["event"].pk],
    "domains_senderdomain_validate": lambda o: [o["domain"].pk],
    "guests_attendee_send_ticket": lambda o: [o["event"].attendees.earliest("created_at").pk],
    "guests_attendee_fix_email": lambda o: [o["event"].attendees.earliest("created_at").pk],
    "guests_attendee_cancel_ticket": lambda o: [o["event"].attendees.earliest("created_at").pk],
    "guests_attendee_support": lambda o: [],  # Support search: of no one object
    "templates_messagetemplate_send_test": lambda o: [
        o["event"].account.templates.filter(event__isnull=True).get().pk],
    "webhooks_endpoint_rotate_secret": lambda o: [
        o["event"].account.webhook_endpoints.get(deleted_at__isnull=True).pk],
}


@pytest.mark.parametrize("target", ["role", "foreign"])
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("model_label", "name", "method"), _custom_pages())
def test_custom_page(world, as_user, django_capture_on_commit_callbacks, model_label, name,
                     method, role, target):
    model_admin = admin.site._registry[apps.get_model(model_label)]
    callback = next(p.callback for p in model_admin.get_urls() if p.name == name)
    permission = callback.admin_permissions[method]
    args = PAGE_OBJECTS[name](world.objects["A" if target == "role" else "C"])
    url = reverse(f"admin:{name}", args=args)
    client = as_user(role)
    before = _fingerprint()

    with django_capture_on_commit_callbacks(execute=False):
        response = client.get(url) if method == "GET" else client.post(url, {})

    if target == "foreign" and args:
        assert response.status_code == 404
    elif role in model_admin.roles_for(permission):
        assert response.status_code in (200, 302), response.status_code
    else:
        assert response.status_code == 403
    if response.status_code in (403, 404):
        assert _fingerprint() == before
