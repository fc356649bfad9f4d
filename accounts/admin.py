from collections.abc import Sequence

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username
from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers, patch_cache_control
from unfold import admin as unfold_admin

from accounts.admin_base import CAPABILITIES, AccountScopedAdmin, ScopedInline
from accounts.models import Account, ApiKey, Membership
from accounts.services import api_key_create, login_failures_forget, member_logins_unlock
from guests.reminders import account_reminders_follow


class MembershipInline(ScopedInline, unfold_admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).select_related("user")  # each row's title


class ApiKeyInline(ScopedInline, unfold_admin.TabularInline):
    model = ApiKey
    extra = 0
    fields = ["name", "mode", "is_admin", "prefix", "revoked_at", "created_at"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # created by the account's actions: shown once, stored hashed

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # revoked from the API keys list


def shown_once_response(request: HttpRequest, modeladmin: admin.ModelAdmin, *, title: str,
                        rows: Sequence[tuple[str, str]], warning: str) -> HttpResponse:
    """A page in the admin's look showing secrets once (new API keys, webhook signing
    secrets): in this response's body only, never in a message (the messages cookie is
    signed, not encrypted, and the session is stored in clear), and ``no-store`` so no cache
    keeps it."""
    opts = modeladmin.model._meta
    context = {**modeladmin.admin_site.each_context(request), "title": title, "opts": opts,
               "rows": list(rows), "warning": warning,
               "back_url": reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist",
                                   current_app=modeladmin.admin_site.name)}
    response = render(request, "admin/accounts/shown_once.html", context)
    add_never_cache_headers(response)
    patch_cache_control(response, no_store=True, private=True)
    response["Referrer-Policy"] = "no-referrer"
    return response


def _key_action(mode: str, is_admin: bool, label: str):
    @admin.action(description=f"Create a {label} (shown once)", permissions=["manage"])
    def create(modeladmin, request, queryset) -> HttpResponse:
        rows = [(f"{label} for {account.name}",
                 api_key_create(account=account, name=f"{label} by {request.user}",
                                mode=mode, is_admin=is_admin))
                for account in queryset[:10]]
        return shown_once_response(
            request, modeladmin, title=f"New {label}{'s' if len(rows) > 1 else ''}", rows=rows,
            warning="Copy each key now: it is shown once, on this page only. Herald stores "
                    "only its hash and cannot show it again.")
    create.__name__ = f"create_{mode}{'_admin' if is_admin else ''}_key"
    return create


class AccountForm(forms.ModelForm):
    """Quiet hours: both times or neither, and not the same time (a window of no length)."""

    def clean(self) -> dict:
        data = super().clean()
        start, end = data.get("quiet_hours_start"), data.get("quiet_hours_end")
        if (start is None) != (end is None):
            self.add_error("quiet_hours_end" if end is None else "quiet_hours_start",
                           "Give both times of the quiet hours (e.g. 21:00 and 08:00), or "
                           "neither.")
        elif start is not None and start == end:
            self.add_error("quiet_hours_end", "The quiet hours end when they start: choose "
                           "another time, or leave both empty for none.")
        return data


@admin.register(Account)
class AccountAdmin(AccountScopedAdmin):
    account_path = ""  # the account itself
    change_roles = CAPABILITIES["manage"]
    add_roles = frozenset()  # accounts are created with `createaccount` (keys shown once)
    delete_roles = frozenset()
    list_display = ["name", "verified_for_sending", "created_at"]
    list_filter = ["verified_for_sending"]
    search_fields = ["name", "id"]
    # The subscription key's hash means nothing to staff (and its 64 unbroken characters
    # overflowed a phone): whether one is set does.
    exclude = ["subscription_key_hash"]
    readonly_fields = ["id", "subscription_key", "created_at", "updated_at"]
    inlines = [MembershipInline, ApiKeyInline]
    form = AccountForm
    fieldsets = [
        (None, {"fields": ["id", "name", "subscription_key", "created_at", "updated_at"]}),
        ("Sending", {"fields": ["verified_for_sending", "contact_quota", "rate_limit_live",
                                "rate_limit_test", "daily_quota_live", "daily_quota_test"]}),
        ("Quiet hours", {
            "fields": ["quiet_hours_start", "quiet_hours_end"],
            "description": "Event reminders wait out these hours, read in each event's own "
                           "time zone: one due inside them goes when they end. Leave both "
                           "empty for none."}),
    ]

    def save_model(self, request, obj: Account, form, change: bool) -> None:
        """New quiet hours move the reminders already scheduled (``guests.reminders``)."""
        super().save_model(request, obj, form, change)
        if change and {"quiet_hours_start", "quiet_hours_end"} & set(form.changed_data):
            account_reminders_follow(account=obj)

    # What the platform grants an account, not what its owner chooses: only a superuser changes
    # them (an owner verifying their own account would skip the "ask an administrator" gate).
    PLATFORM_FIELDS = ["verified_for_sending", "contact_quota", "rate_limit_live",
                       "rate_limit_test", "daily_quota_live", "daily_quota_test"]

    def get_readonly_fields(self, request, obj=None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        return fields if request.user.is_superuser else [*fields, *self.PLATFORM_FIELDS]

    @admin.display(description="subscription key")
    def subscription_key(self, account: Account) -> str:
        if account.subscription_key_hash:
            return "Set (Herald keeps only its hash: a lost key is replaced, not shown)"
        return "Not set"
    actions = [_key_action(ApiKey.Mode.LIVE, False, "live key"),
               _key_action(ApiKey.Mode.TEST, False, "test key"),
               _key_action(ApiKey.Mode.LIVE, True, "admin key"),
               "unlock_logins"]

    @admin.action(description="Unlock the members' admin logins (too many failed attempts)",
                  permissions=["manage"])
    def unlock_logins(self, request, queryset) -> None:
        for account in queryset[:10]:
            result = member_logins_unlock(account=account, by=request.user)
            self.message_user(request, f"{account.name}: "
                              + (f"unlocked {', '.join(result.unlocked)}." if result.unlocked
                                 else "no member's login was locked."), messages.SUCCESS)
            if result.refused:
                self.message_user(
                    request, f"{account.name}: not unlocked {', '.join(result.refused)}: also "
                    "a member of an account you do not own, or a superuser (a superuser "
                    "unlocks them in Axes → Access attempts).", messages.WARNING)


@admin.action(description="Revoke selected keys (at once, for good)", permissions=["manage"])
def revoke_keys(modeladmin, request, queryset) -> None:
    count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
    modeladmin.message_user(request, f"Revoked {count} key(s); processes stop accepting them "
                            "within the key cache time.", messages.SUCCESS)


@admin.register(ApiKey)
class ApiKeyAdmin(AccountScopedAdmin):
    """Keys by name and prefix, never their value (only a hash is stored)."""

    list_display = ["name", "account", "mode", "is_admin", "prefix", "revoked_at", "created_at"]
    list_filter = ["mode", "is_admin", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix"]
    fields = ["name", "account", "mode", "is_admin", "prefix", "revoked_at", "created_at"]
    readonly_fields = fields
    actions = [revoke_keys]
    change_roles = CAPABILITIES["manage"]
    add_roles = frozenset()
    delete_roles = frozenset()


def login_locked_response(request: HttpRequest, original_response: HttpResponse | None = None,
                          credentials: dict | None = None) -> HttpResponse:
    """django-axes' answer to a locked-out login (AXES_LOCKOUT_CALLABLE): the admin login
    page, in the admin's look, saying why and what to do, with status 429."""
    from axes.helpers import get_cool_off, get_failure_limit

    cool_off = get_cool_off(request)
    context = {**admin.site.each_context(request), "title": "Login locked",
               "cool_off_minutes": max(1, round(cool_off.total_seconds() / 60))
               if cool_off else 0,
               "failure_limit": get_failure_limit(request, credentials)}
    return render(request, "admin/accounts/login_locked.html", context, status=429)


class LoginAttemptsHandler(AxesDatabaseHandler):
    """django-axes' database handler (AXES_HANDLER), whose reset on a successful login
    (AXES_RESET_ON_SUCCESS) forgets that user's failures only: axes' own deletes every
    failure from the client's address as well, so anyone with a login of his own could
    clear his address's count between guesses at another user."""

    def reset_user_attempts(self, request: HttpRequest, credentials: dict | None = None) -> int:
        username = get_client_username(request, credentials)
        if not username:
            return 0
        return login_failures_forget(username=username, address=request.axes_ip_address)
