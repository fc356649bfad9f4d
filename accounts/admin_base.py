"""Tenancy in the admin: staff see and touch only their accounts' objects.

Every ModelAdmin of Herald derives from ``AccountScopedAdmin``. Superusers see everything;
other staff users see the objects of the accounts they have a Membership in, with what
their role *in each object's own account* allows. Querysets, foreign-key choices,
autocomplete and actions all go through ``get_queryset``, so an object of another account is
a 404 everywhere.

What a role may do is one table, ``CAPABILITIES`` (beside Django's view/change/add/delete,
whose roles each admin sets). Every admin action declares what it needs with Django's own
``@admin.action(permissions=[...])`` and every custom admin page with ``scoped_view(get=...,
post=...)``; both are checked against the user's role in the account of *every* object they
touch, and an action or page that declares nothing is never run (and fails ``manage.py
check``: see ``AccountScopedAdmin.check``).
"""

from functools import wraps
from typing import Any

from django.contrib import admin, messages
from django.core import checks
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.utils.text import capfirst
from unfold.admin import ModelAdmin as UnfoldModelAdmin

from accounts.models import Account, Membership

Role = Membership.Role
ALL_ROLES = frozenset({Role.OWNER, Role.STAFF, Role.SUPPORT})

# The capabilities an action or a custom page can name, and the roles that have them.
CAPABILITIES: dict[str, frozenset] = {
    # support's job: resend a ticket or a webhook message (the same services as the API)
    "resend": ALL_ROLES,
    # run events: guest imports, bulk sends, test sends, a sender domain's DNS check
    "operate": frozenset({Role.OWNER, Role.STAFF}),
    # the account's keys and secrets: API keys, webhook secrets, sender domains on/off,
    # provider integrations, unlocking members' logins
    "manage": frozenset({Role.OWNER}),
}
DJANGO_PERMISSIONS = ("view", "change", "add", "delete")  # roles set per admin, below


def user_accounts(request: HttpRequest) -> dict[Any, str]:
    """The request user's account ids with their role (cached on the request)."""
    cached = getattr(request, "_herald_accounts", None)
    if cached is None:
        cached = dict(Membership.objects.filter(user_id=request.user.pk)
                      .values_list("account_id", "role"))
        request._herald_accounts = cached
    return cached


class AccountScopedAdmin(UnfoldModelAdmin):
    """``account_path``: the lookup from the model to its Account ("" for Account itself)."""

    account_path = "account"
    view_roles: frozenset = ALL_ROLES
    change_roles: frozenset = frozenset({Role.OWNER, Role.STAFF})
    add_roles: frozenset = frozenset({Role.OWNER, Role.STAFF})
    delete_roles: frozenset = frozenset({Role.OWNER})

    def _scope(self, request: HttpRequest, queryset: QuerySet,
               path: str | None = None) -> QuerySet:
        if request.user.is_superuser:
            return queryset
        path = self.account_path if path is None else path
        lookup = f"{path}__in" if path else "pk__in"
        return queryset.filter(**{lookup: list(user_accounts(request))})

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return self._scope(request, super().get_queryset(request))

    # Page titles in words: the list is "Templates", an object's page its name ("Spring Gala"),
    # not Django's "Select message template to change" and "Change event".
    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        return super().changelist_view(request, {
            "title": capfirst(self.opts.verbose_name_plural), **(extra_context or {})})

    def render_change_form(self, request: HttpRequest, context: dict[str, Any], add: bool = False,
                           change: bool = False, form_url: str = "", obj: Model | None = None):
        defaults = {f"{verb} {self.opts.verbose_name}" for verb in ("Change", "View")}
        if change and obj is not None and context.get("title") in defaults:
            context["title"] = str(obj)  # the object the view already looked up: no query
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        """A member of one account where they may add finds it chosen on an add form."""
        initial = super().get_changeform_initial_data(request)
        if self.account_path == "account" and "account" not in initial \
                and not request.user.is_superuser:
            accounts = [account for account, role in user_accounts(request).items()
                        if role in self.add_roles]
            if len(accounts) == 1:
                initial["account"] = accounts[0]
        return initial

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> list[Any]:
        """An object never changes account: a member of two accounts could otherwise move one
        account's event or guests into the other (the form's same-account check compares the
        relations with the account chosen, not with the one the object came from)."""
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and self.account_path == "account" and "account" not in fields:
            fields.append("account")
        return fields

    def get_list_filter(self, request: HttpRequest) -> list[Any]:
        """A filter on a relation lists only what the user's (scoped) rows point at: a plain
        one would list every account's events, templates, accounts."""
        filters: list[Any] = []
        for entry in super().get_list_filter(request):
            if isinstance(entry, str) and _is_relation(self.model, entry):
                filters.append((entry, admin.RelatedOnlyFieldListFilter))
            else:
                filters.append(entry)
        return filters

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any):
        """Choices of the user's accounts only; of an account, only those where the user's
        role may add and change this admin's objects (not every account they belong to)."""
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if field is not None and not request.user.is_superuser:
            field.queryset = _scoped_related(request, field.queryset)
            if field.queryset.model is Account:
                roles = self.add_roles & self.change_roles
                field.queryset = field.queryset.filter(pk__in=[
                    account for account, role in user_accounts(request).items()
                    if role in roles])
        return field

    def get_form(self, request: HttpRequest, obj: Model | None = None, change: bool = False,
                 **kwargs: Any):
        """The admin's form, refusing a related object of another account (see
        ``SameAccountRelations``)."""
        form = super().get_form(request, obj, change=change, **kwargs)
        return _same_account_form(form, request, self.admin_site,
                                  lambda f: self._form_account(f),
                                  self.change_roles if change else self.add_roles)

    def _form_account(self, form: Any) -> tuple[Any, str | None]:
        """The account of the object ``form`` saves (its first ``account_path`` hop as
        chosen in the form, else as stored) and the field that chose it."""
        if not self.account_path:
            return form.instance.pk, None
        first = self.account_path.split("__")[0]
        if first not in form.fields:
            return self._account_id(form.instance), None
        return _account_of(form.cleaned_data.get(first), self.admin_site), first

    def _allowed(self, request: HttpRequest, roles: frozenset) -> bool:
        if request.user.is_superuser:
            return True
        return request.user.is_active and request.user.is_staff and any(
            role in roles for role in user_accounts(request).values())

    def has_module_permission_for_roles(self, roles: set[str]) -> bool:
        """Whether a member with these roles may open this admin at all."""
        return bool(set(self.view_roles | self.change_roles) & roles)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._allowed(request, self.view_roles)

    def _allowed_on(self, request: HttpRequest, obj: Model | None, roles: frozenset) -> bool:
        """With an object: the user's role in *that object's* account decides (an owner of
        one account who is staff of another is staff there)."""
        if obj is None or request.user.is_superuser:
            return self._allowed(request, roles)
        role = user_accounts(request).get(self._account_id(obj))
        return request.user.is_active and request.user.is_staff and role in roles

    def _account_id(self, obj: Model) -> Any:
        if not self.account_path:
            return obj.pk
        *hops, last = self.account_path.split("__")
        for hop in hops:
            obj = getattr(obj, hop, None)
            if obj is None:
                return None
        return getattr(obj, f"{last}_id", None)

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._allowed_on(request, obj, self.view_roles | self.change_roles)

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._allowed_on(request, obj, self.change_roles)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return self._allowed(request, self.add_roles)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._allowed_on(request, obj, self.delete_roles)

    # --- capabilities: what every action and custom page needs, per object's account -----

    def roles_for(self, permission: str) -> frozenset:
        """The roles that may do ``permission``: a capability of ``CAPABILITIES`` or one of
        Django's four (this admin's ``*_roles``)."""
        if permission in CAPABILITIES:
            return CAPABILITIES[permission]
        return {"view": self.view_roles | self.change_roles, "change": self.change_roles,
                "add": self.add_roles, "delete": self.delete_roles}[permission]

    def has_resend_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._allowed_on(request, obj, CAPABILITIES["resend"])

    def has_operate_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._allowed_on(request, obj, CAPABILITIES["operate"])

    def has_manage_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._allowed_on(request, obj, CAPABILITIES["manage"])

    def accounts_refused(self, request: HttpRequest, queryset: QuerySet,
                         permissions: Any) -> list[Account]:
        """The accounts of ``queryset``'s rows in which the user's role lacks any of
        ``permissions`` (one query for the rows' accounts)."""
        if request.user.is_superuser:
            return []
        roles = frozenset.intersection(*(self.roles_for(p) for p in permissions))
        rows = self.model._default_manager.filter(pk__in=queryset.order_by().values("pk"))
        ids = set(rows.values_list(self.account_path or "pk", flat=True))
        mine = user_accounts(request)
        refused = [account_id for account_id in ids if mine.get(account_id) not in roles]
        return list(Account.objects.filter(pk__in=refused).order_by("name"))

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        """Django's list (offered when the user's role in *some* account allows it), each
        action wrapped so that it runs only when the role in the account of *every* selected
        row allows it; an action that declares no permission is never offered."""
        return {name: (self._checked_action(func, text), name, text)
                for name, (func, _, text) in super().get_actions(request).items()
                if getattr(func, "allowed_permissions", None)}

    def _checked_action(self, action: Any, description: Any) -> Any:
        from django.contrib.admin.utils import model_format_dict

        label = str(description) % model_format_dict(self.opts)

        @wraps(action)
        def checked(modeladmin: "AccountScopedAdmin", request: HttpRequest,
                    queryset: QuerySet) -> HttpResponse | None:
            if not queryset.exists():  # the selected rows are gone, or were never visible
                messages.error(request, "Nothing was done: none of the selected rows is there "
                               "for you any more.")
                return None
            permissions = action.allowed_permissions
            refused = modeladmin.accounts_refused(request, queryset, permissions)
            if not refused:
                return action(modeladmin, request, queryset)
            roles = " or ".join(sorted(frozenset.intersection(
                *(modeladmin.roles_for(p) for p in permissions)))) or "superuser"
            messages.error(request, (
                f"Nothing was done: “{label}” needs the {roles} role in the account of every "
                f"selected row, and your role in {', '.join(a.name for a in refused)} is not "
                "that."))
            return None

        return checked

    def scoped_view(self, view: Any, *, get: str | None = None, post: str | None = None,
                    lookup: str = "object_id") -> Any:
        """A custom admin page about one object of this admin, declaring the permission it
        needs per method. The object (URL argument ``lookup``) is looked up through
        ``get_queryset`` (another account's: 404), the permission is checked against the
        user's role in *that object's* account (403), then ``view(request, obj, **rest)``
        runs. Staff login and CSRF protection: ``admin_site.admin_view``."""
        needs = {method: permission for method, permission in
                 (("GET", get), ("HEAD", get), ("POST", post)) if permission}
        for permission in needs.values():
            self.roles_for(permission)  # an unknown name fails here, at URL set-up

        @wraps(view)
        def checked(request: HttpRequest, **kwargs: Any) -> HttpResponse:
            permission = needs.get(request.method)
            if permission is None:
                return HttpResponseNotAllowed(list(needs))
            try:
                obj = self.get_queryset(request).filter(pk=kwargs.pop(lookup)).first()
            except (ValidationError, ValueError):  # not an id of this model at all: no such page
                obj = None
            if obj is None:
                raise Http404(f"No such {self.opts.verbose_name}.")
            if not self._allowed_on(request, obj, self.roles_for(permission)):
                raise PermissionDenied
            return view(request, obj, **kwargs)

        checked.admin_permissions = needs
        return self.admin_site.admin_view(checked)

    def listing_view(self, view: Any, *, get: str) -> Any:
        """A custom page about no one object (a search across the user's accounts), for the
        roles with ``get`` in *some* account; what it lists goes through ``get_queryset``.
        Declared like ``scoped_view``'s pages (``admin_permissions``), so ``manage.py check``
        knows what it needs."""
        roles = self.roles_for(get)

        def checked(request: HttpRequest) -> HttpResponse:
            if request.method not in ("GET", "HEAD"):
                return HttpResponseNotAllowed(["GET"])
            if not self._allowed(request, roles):
                raise PermissionDenied
            return view(request)

        checked.admin_permissions = {"GET": get, "HEAD": get}
        return self.admin_site.admin_view(checked)

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        return [*super().check(**kwargs), *self._check_declarations()]

    def _check_declarations(self) -> list[checks.CheckMessage]:
        """Every action and every custom URL of this admin declares what it needs."""
        known = {*CAPABILITIES, *DJANGO_PERMISSIONS}
        errors = []
        for func, name, _ in self._get_base_actions():
            declared = getattr(func, "allowed_permissions", None) or ()
            if not declared or set(declared) - known:
                errors.append(checks.Error(
                    f"Admin action {name!r} must declare its permission: "
                    f"@admin.action(permissions=[one of {sorted(known)}]).",
                    obj=self.__class__, id="herald.E001"))
        standard = {pattern.name for pattern in admin.ModelAdmin.get_urls(self)}
        for pattern in self.get_urls():
            if pattern.name not in standard and not getattr(pattern.callback,
                                                            "admin_permissions", None):
                errors.append(checks.Error(
                    f"Admin view {pattern.name!r} must declare its permission: build it "
                    "with scoped_view(view, get=..., post=...).", obj=self.__class__,
                    id="herald.E002"))
        return errors


def _is_relation(model: type[Model], path: str) -> bool:
    from django.contrib.admin.utils import get_fields_from_path

    try:
        return bool(get_fields_from_path(model, path)[-1].is_relation)
    except Exception:  # not a model path (a custom filter's name): leave it as it is
        return False


def _scoped_related(request: HttpRequest, queryset: QuerySet) -> QuerySet:
    """Choices of a foreign key: only the user's accounts' rows (or accounts)."""
    accounts = list(user_accounts(request))
    model = queryset.model
    if model is Account:
        return queryset.filter(pk__in=accounts)
    if any(f.name == "account" for f in model._meta.fields):
        return queryset.filter(account__in=accounts)
    return queryset


def _account_of(obj: Any, site: admin.AdminSite) -> Any:
    """The id of the account ``obj`` belongs to; None for a model no account owns."""
    if obj is None:
        return None
    if isinstance(obj, Account):
        return obj.pk
    model_admin = site._registry.get(type(obj))
    if isinstance(model_admin, AccountScopedAdmin) and model_admin.account_path:
        return model_admin._account_id(obj)
    if any(f.name == "account" for f in obj._meta.concrete_fields):
        return obj.account_id
    return None


class SameAccountRelations:
    """Mixin of every admin (and inline) form: each object a foreign key or many-to-many
    field picks must (a) belong to the account of the object being saved and (b) to an
    account where the user's role may add (or change) this admin's objects; otherwise the
    field gets an error and nothing is saved. Choices are already limited to the user's
    accounts, but a user in two accounts could otherwise link one account's row to the
    other's (a guest into another account's event, a template onto its notification event).
    Runs before the form's own ``clean`` (some of which call services)."""

    _herald_request: HttpRequest
    _herald_site: admin.AdminSite
    _herald_roles: frozenset

    def _herald_account(self) -> tuple[Any, str | None]:
        raise NotImplementedError

    def clean(self) -> dict[str, Any]:
        from django.forms import ModelChoiceField

        request, site = self._herald_request, self._herald_site
        data = self.cleaned_data
        target, chooser = self._herald_account()
        if chooser is not None and data.get(chooser) is None:
            return super().clean()  # no account chosen: the field has said so already
        superuser = request.user.is_superuser
        mine = user_accounts(request)
        for name, field in self.fields.items():
            if not isinstance(field, ModelChoiceField) or data.get(name) in (None, ""):
                continue
            value = data[name]
            for related in (value if isinstance(value, QuerySet | list | tuple) else [value]):
                account = _account_of(related, site)
                if account is None:
                    continue
                if target is not None and account != target:
                    # The name only for the error: no query on a form that is fine.
                    owner = Account.objects.filter(pk=target).values_list(
                        "name", flat=True).first() or target
                    self.add_error(name, (
                        f"“{related}” is not in {owner}, the account of this "
                        f"{self._meta.model._meta.verbose_name}; choose one of {owner}'s."))
                    break
                if not superuser and mine.get(account) not in self._herald_roles:
                    self.add_error(name, (
                        f"Your role in the account of “{related}” may not add or change "
                        f"{self._meta.model._meta.verbose_name_plural} there."))
                    break
        return super().clean()


def _same_account_form(form: type, request: HttpRequest, site: admin.AdminSite,
                       account: Any, roles: frozenset) -> type:
    """``form`` with ``SameAccountRelations`` checks: ``account(form)`` gives the id of the
    account the saved object belongs to and the field that chose it (or None)."""
    return type(form.__name__, (SameAccountRelations, form), {
        "_herald_request": request, "_herald_site": site, "_herald_roles": roles,
        "_herald_account": lambda self: account(self)})


class ScopedInline:
    """Mixin for inlines: shown with their (scoped) parent; FK choices scoped too."""

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return request.user.is_superuser or bool(user_accounts(request))

    def parent_allows(self, request: HttpRequest, obj: Model | None, permission: str) -> bool:
        """Whether the parent's admin allows ``permission`` on ``obj``, the parent object:
        the role in *its* account decides."""
        parent = self.admin_site._registry[self.parent_model]
        return parent._allowed_on(request, obj, parent.roles_for(permission))

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if field is not None and not request.user.is_superuser:
            field.queryset = _scoped_related(request, field.queryset)
        return field

    def get_formset(self, request: HttpRequest, obj: Model | None = None, **kwargs: Any):
        """Each inline form's related objects: in the parent's account, where the user's
        role may add (new parent) or change (existing parent) the parent's objects."""
        formset = super().get_formset(request, obj, **kwargs)
        parent = self.admin_site._registry[self.parent_model]
        roles = parent.change_roles if obj is not None else parent.add_roles
        fk_name = formset.fk.name
        site = self.admin_site

        def account(form: Any) -> tuple[Any, str | None]:
            return _account_of(form.cleaned_data.get(fk_name), site), None

        formset.form = _same_account_form(formset.form, request, site, account, roles)
        return formset
