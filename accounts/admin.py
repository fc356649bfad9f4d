from django.contrib import admin

from accounts.models import Account, ApiKey, Membership
from common.admin import AccountScopedAdmin, ScopedInline


class MembershipInline(ScopedInline, admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


class ApiKeyInline(ScopedInline, admin.TabularInline):
    model = ApiKey
    extra = 0
    fields = ["name", "mode", "is_admin", "prefix", "revoked_at", "created_at"]
    readonly_fields = ["name", "mode", "is_admin", "prefix", "created_at"]
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # keys are created by `createaccount`, shown once, stored hashed


@admin.register(Account)
class AccountAdmin(AccountScopedAdmin):
    account_path = ""  # the account itself
    change_roles = frozenset({"owner"})
    add_roles = frozenset()  # accounts are created with `createaccount` (keys shown once)
    delete_roles = frozenset()
    list_display = ["name", "verified_for_sending", "created_at"]
    list_filter = ["verified_for_sending"]
    search_fields = ["name", "id"]
    readonly_fields = ["id", "subscription_key_hash", "created_at", "updated_at"]
    inlines = [MembershipInline, ApiKeyInline]
