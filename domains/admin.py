"""Admin for sender domains (records table, "Validate now", activate/deactivate) and brands.
Buttons and actions call the same services as the REST API."""

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from unfold import admin as unfold_admin

from accounts.admin_base import CAPABILITIES, AccountScopedAdmin, ScopedInline
from common.errors import HeraldError
from domains import selectors, services
from domains.models import Brand, SenderDomain, SenderDomainEvent


def _flag(value: bool | None) -> str:
    return {True: "✔", False: "✘", None: "-"}[value]


class SenderDomainAddForm(forms.ModelForm):
    """Adding a domain authenticates it at the provider (the API's POST), in ``clean``, so a
    refusal is shown on the form and nothing is stored."""

    class Meta:
        model = SenderDomain
        fields = ["account", "domain"]

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        try:
            self.created, _ = services.sender_domain_create(account=data["account"],
                                                            domain=data["domain"])
        except HeraldError as exc:
            raise forms.ValidationError(exc.message) from None
        return data

    def validate_unique(self) -> None:
        """The service has stored the row already (and checked uniqueness itself)."""


class EventInline(ScopedInline, unfold_admin.TabularInline):
    model = SenderDomainEvent
    extra = 0
    can_delete = False
    fields = readonly_fields = ["created_at", "name", "detail"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


def _report(modeladmin, request, run, rows) -> None:
    for row in rows:
        try:
            text = run(row)
        except HeraldError as exc:
            modeladmin.message_user(request, f"{row.domain}: {exc.message}", messages.ERROR)
        else:
            modeladmin.message_user(request, f"{row.domain}: {text}", messages.SUCCESS)


@admin.register(SenderDomain)
class SenderDomainAdmin(AccountScopedAdmin):
    list_display = ["domain", "account", "provider", "verified", "enabled", "last_checked_at",
                    "short_result", "next_check_at"]
    list_filter = ["verified", "enabled", "provider"]
    search_fields = ["domain", "account__name", "provider_id"]
    actions = ["validate_now", "activate", "deactivate"]
    # Which domain the account's mail comes from is the owner's; staff may check its DNS.
    add_roles = delete_roles = CAPABILITIES["manage"]
    inlines = [EventInline]
    readonly = ["domain", "account", "provider", "provider_id", "verified", "enabled",
                "verified_at", "records_table", "last_checked_at", "last_result",
                "dns_checked_at", "next_check_at", "check_attempts", "give_up_at",
                "created_at", "updated_at"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = SenderDomainAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        return ["account", "domain"] if obj is None else self.readonly

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    def save_model(self, request, obj, form, change) -> None:
        if not change:  # the form's clean() created it through the service
            obj.pk = form.created.pk
            obj.refresh_from_db()

    @admin.display(description="Last result")
    def short_result(self, obj: SenderDomain) -> str:
        return obj.last_result[:80]

    @admin.display(description="DNS records")
    def records_table(self, obj: SenderDomain):
        checks = {(c.get("type"), c.get("host")): c for c in obj.dns_checks}
        if not obj.dns_records:
            return "No records yet (the provider has not issued them)."
        rows = []
        for r in obj.dns_records:
            check = checks.get((r.get("type"), r.get("host")))
            found = check.get("found") if check else None
            seen = (", ".join(check.get("seen") or []) or check.get("error", "")) if check else ""
            rows.append((r.get("type", "").upper(), r.get("host", ""), r.get("data", ""),
                         _flag(bool(r.get("valid"))), _flag(found), seen))
        body = format_html_join("", "<tr><td>{}</td><td><code>{}</code></td><td><code>{}</code>"
                                "</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows)
        return format_html(
            '<table class="herald-dns-records"><thead><tr><th>Type</th><th>Host</th>'
            "<th>Value</th><th>Valid (provider)</th><th>Found (Herald DNS check)</th>"
            "<th>DNS answer</th></tr></thead><tbody>{}</tbody></table>", body)

    # -- "Validate now" button on the change page -------------------------------------------

    def get_urls(self):
        return [path("<int:pk>/validate/",
                     self.scoped_view(self.validate_view, post="operate", lookup="pk"),
                     name="domains_senderdomain_validate"), *super().get_urls()]

    def validate_view(self, request, row: SenderDomain):
        _report(self, request, self._validate, [row])
        return HttpResponseRedirect(reverse("admin:domains_senderdomain_change",
                                            args=[row.pk]))

    @staticmethod
    def _validate(row: SenderDomain) -> str:
        row = services.sender_domain_validate(sender_domain=row)
        return "verified and enabled." if row.verified else row.last_result

    # -- actions ------------------------------------------------------------------------------

    @admin.action(description="Validate now", permissions=["operate"])
    def validate_now(self, request, queryset) -> None:
        _report(self, request, self._validate, queryset)

    @admin.action(description="Activate (send from the domain)", permissions=["manage"])
    def activate(self, request, queryset) -> None:
        _report(self, request, lambda row: services.sender_domain_activate(
            sender_domain=row) and "activated.", queryset)

    @admin.action(description="Deactivate (send from the platform sender)",
                  permissions=["manage"])
    def deactivate(self, request, queryset) -> None:
        _report(self, request, lambda row: services.sender_domain_deactivate(
            sender_domain=row) and "deactivated.", queryset)


class BrandForm(forms.ModelForm):
    class Meta:
        model = Brand
        fields = ["account", "name", "from_name", "from_email", "is_default", "templates"]

    def _post_clean(self) -> None:
        """Validate as a non-default brand: making it the default takes over from the current
        one in ``brand_save``, which the one-default constraint would otherwise refuse here."""
        wanted = bool(self.cleaned_data.get("is_default"))
        self.cleaned_data["is_default"] = False
        super()._post_clean()
        self.cleaned_data["is_default"] = self.instance.is_default = wanted


@admin.register(Brand)
class BrandAdmin(AccountScopedAdmin):
    form = BrandForm
    list_display = ["name", "account", "from_name", "from_email", "is_default", "in_use"]
    list_filter = ["is_default"]
    search_fields = ["name", "from_email", "account__name"]
    fields = ["account", "name", "from_name", "from_email", "is_default", "templates"]

    @admin.display(boolean=True, description="Used for sends now")
    def in_use(self, obj: Brand) -> bool:
        return selectors.brand_usable(brand=obj)

    def save_model(self, request, obj, form, change) -> None:
        services.brand_save(brand=obj)
