"""Tenancy in the admin: staff see and touch only their accounts' objects.

Every ModelAdmin of Herald derives from ``AccountScopedAdmin``. Superusers see everything;
other staff users see the objects of the accounts they have a Membership in, with what
their role allows (owner: everything; staff: run events, guests, templates; support: look
up and resend). Querysets, foreign-key choices, autocomplete and actions all go through
``get_queryset``, so an object of another account is a 404 everywhere.
"""

from typing import Any

from django.contrib import admin
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from accounts.models import Account, Membership

Role = Membership.Role
ALL_ROLES = frozenset({Role.OWNER, Role.STAFF, Role.SUPPORT})


def user_accounts(request: HttpRequest) -> dict[Any, str]:
    """The request user's account ids with their role (cached on the request)."""
    cached = getattr(request, "_herald_accounts", None)
    if cached is None:
        cached = dict(Membership.objects.filter(user_id=request.user.pk)
                      .values_list("account_id", "role"))
        request._herald_accounts = cached
    return cached


class AccountScopedAdmin(admin.ModelAdmin):
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
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if field is not None and not request.user.is_superuser:
            field.queryset = _scoped_related(request, field.queryset)
        return field

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


class ScopedInline:
    """Mixin for inlines: shown with their (scoped) parent; FK choices scoped too."""

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return request.user.is_superuser or bool(user_accounts(request))

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if field is not None and not request.user.is_superuser:
            field.queryset = _scoped_related(request, field.queryset)
        return field
