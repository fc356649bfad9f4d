"""Admin for sender domains (records table, "Validate now", activate/deactivate) and brands.
Buttons and actions call the same services as the REST API."""

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from accounts.admin_base import CAPABILITIES, AccountScopedAdmin
from common.errors import HeraldError
from comms import wording
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


def _report(modeladmin, request, verb: str, run, rows) -> None:
    """One message per domain, starting with a word ("Checked mail.acme.com: …"), never with
    the domain: a message is shown capitalised."""
    for row in rows:
        try:
            text = run(row)
        except HeraldError as exc:
            modeladmin.message_user(request, f"Could not {verb} {row.domain}: {exc.message}",
                                    messages.ERROR)
        else:
            modeladmin.message_user(request, text, messages.SUCCESS)


DEV_NOTE = ("Development mode: verification is simulated; DNS records are not checked by a "
            "mail provider. The DNS lookup below shows whether they are really published.")
SERVICE_NAMES = {"dev": "Development mode (simulated)", "sendgrid": "SendGrid",
                 "ses": "Amazon SES"}


def _unpublished(row: SenderDomain) -> int:
    return sum(1 for check in row.dns_checks if not check.get("found"))


def domain_state(row: SenderDomain) -> str:
    """What the domain's state means for sending, without contradicting its DNS table."""
    use = ("mail is sent from it" if row.enabled
           else "not in use: mail is sent from the platform's address")
    if row.provider == "dev":
        if row.verified:
            return f"Development mode: verification is simulated; {use}"
        return "Development mode: not validated yet (verification is simulated)"
    if not row.verified:
        return "Not verified yet: waiting for its DNS records"
    missing = _unpublished(row)
    lag = (f" (Herald's own DNS lookup does not see {missing} of {len(row.dns_checks)} "
           "records yet: DNS changes can take hours to show everywhere)" if missing else "")
    return f"Verified by {SERVICE_NAMES.get(row.provider, row.provider)}; {use}{lag}"


HISTORY_WORDS = {
    SenderDomainEvent.Name.CREATED: "Added: the DNS records to publish were issued",
    SenderDomainEvent.Name.CHECKED: "Checked: records still missing",
    SenderDomainEvent.Name.VERIFIED: "Verified",
    SenderDomainEvent.Name.ENABLED: "Mail is sent from it",
    SenderDomainEvent.Name.DISABLED: "Mail is sent from the platform's address again",
    SenderDomainEvent.Name.GAVE_UP: "Stopped checking: “Validate now” starts again",
}


def domain_history(row: SenderDomain) -> list[tuple[str, str]]:
    """The domain's changes as (when, what happened in words), oldest first."""
    simulated = " (simulated, development mode)" if row.provider == "dev" else ""
    return [(wording.moment(e.created_at), HISTORY_WORDS.get(e.name, e.get_name_display())
             + (simulated if e.name == SenderDomainEvent.Name.VERIFIED else ""))
            for e in row.events.all()]


@admin.register(SenderDomain)
class SenderDomainAdmin(AccountScopedAdmin):
    list_display = ["domain", "account", "state", "last_checked"]
    list_filter = ["verified", "enabled"]
    search_fields = ["domain", "account__name", "provider_id"]
    actions = ["validate_now", "activate", "deactivate"]
    # Which domain the account's mail comes from is the owner's; staff may check its DNS.
    add_roles = delete_roles = CAPABILITIES["manage"]
    fieldsets = [
        (None, {"fields": ["domain", "account", "state", "mail_service", "verified_at",
                           "enabled"]}),
        ("DNS check", {"fields": ["dns_checked", "result", "next_check"]}),
        ("Technical details", {"classes": ["collapse"], "fields": [
            "service_id", "check_attempts", "give_up_at", "created_at", "updated_at"]}),
    ]
    readonly = [name for _, options in fieldsets for name in options["fields"]]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = SenderDomainAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fieldsets(self, request, obj=None):
        return [(None, {"fields": ["account", "domain"]})] if obj is None else self.fieldsets

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """Headed by the domain and its state; the records table and the history in words
        below the fields, full width (change_form.html)."""
        row = self.get_object(request, object_id)
        if row is not None:
            extra_context = {"title": f"Sender domain {row.domain}",
                             "subtitle": domain_state(row),
                             "records_table": self.records_table(row),
                             "history": domain_history(row), **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change) -> None:
        if not change:  # the form's clean() created it through the service
            obj.pk = form.created.pk
            obj.refresh_from_db()

    @admin.display(description="state")
    def state(self, obj: SenderDomain) -> str:
        return domain_state(obj)

    @admin.display(description="last checked", ordering="last_checked_at")
    def last_checked(self, obj: SenderDomain) -> str:
        return wording.moment(obj.last_checked_at) or "Never"

    @admin.display(description="mail service")
    def mail_service(self, obj: SenderDomain) -> str:
        if obj.provider == "dev":
            return DEV_NOTE
        return SERVICE_NAMES.get(obj.provider, obj.provider)

    @admin.display(description="the mail service's id for it")
    def service_id(self, obj: SenderDomain) -> str:
        return obj.provider_id

    @admin.display(description="DNS checked at")
    def dns_checked(self, obj: SenderDomain) -> str:
        return wording.moment(obj.dns_checked_at) or "Not yet"

    @admin.display(description="last result")
    def result(self, obj: SenderDomain) -> str:
        if obj.provider == "dev" and obj.verified:
            return "Simulated: development mode reports every domain valid."
        return obj.last_result or "-"

    @admin.display(description="next check")
    def next_check(self, obj: SenderDomain) -> str:
        if obj.next_check_at:
            return wording.moment(obj.next_check_at)
        return "None planned: “Validate now” checks again" if not obj.verified else "-"

    @admin.display(description="DNS records")
    def records_table(self, obj: SenderDomain):
        checks = {(c.get("type"), c.get("host")): c for c in obj.dns_checks}
        if not obj.dns_records:
            return "No records yet (the mail service has not issued them)."
        rows = []
        for r in obj.dns_records:
            check = checks.get((r.get("type"), r.get("host")))
            found = check.get("found") if check else None
            seen = (", ".join(check.get("seen") or []) or check.get("error", "")) if check else ""
            rows.append((r.get("type", "").upper(), r.get("host", ""), r.get("data", ""),
                         _flag(bool(r.get("valid"))), _flag(found), seen))
        body = format_html_join("", "<tr><td>{}</td><td><code>{}</code></td><td><code>{}</code>"
                                "</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows)
        valid = ("Valid (simulated)" if obj.provider == "dev"
                 else f"Valid ({SERVICE_NAMES.get(obj.provider, obj.provider)})")
        # Long hosts and answers wrap; what still does not fit scrolls inside this box.
        return format_html(
            '<div class="herald-scroll" style="max-width:100%;overflow-x:auto">'
            "<style>.herald-dns-records th,.herald-dns-records td{{padding:6px 12px 6px 0;"
            "text-align:left;vertical-align:top}}.herald-dns-records code{{word-break:break-all}}"
            "</style>"
            '<table class="herald-dns-records" style="width:100%;min-width:40rem">'
            "<thead><tr><th>Type</th><th>Host</th><th>Value</th><th>{}</th>"
            "<th>Published (Herald's DNS lookup)</th><th>What the DNS answered</th></tr>"
            "</thead><tbody>{}</tbody></table></div>", valid, body)

    # -- "Validate now" button on the change page -------------------------------------------

    def get_urls(self):
        return [path("<int:pk>/validate/",
                     self.scoped_view(self.validate_view, post="operate", lookup="pk"),
                     name="domains_senderdomain_validate"), *super().get_urls()]

    def validate_view(self, request, row: SenderDomain):
        _report(self, request, "check", self._validate, [row])
        return HttpResponseRedirect(reverse("admin:domains_senderdomain_change",
                                            args=[row.pk]))

    @staticmethod
    def _validate(row: SenderDomain) -> str:
        row = services.sender_domain_validate(sender_domain=row)
        if row.provider == "dev":
            return (f"Checked {row.domain} in development mode: verification is simulated, so "
                    "it counts as verified; its DNS records were not checked by a mail "
                    "provider.")
        return f"Checked {row.domain}: {domain_state(row) if row.verified else row.last_result}"

    # -- actions ------------------------------------------------------------------------------

    @admin.action(description="Validate now", permissions=["operate"])
    def validate_now(self, request, queryset) -> None:
        _report(self, request, "check", self._validate, queryset)

    @admin.action(description="Activate (send from the domain)", permissions=["manage"])
    def activate(self, request, queryset) -> None:
        _report(self, request, "activate", lambda row: services.sender_domain_activate(
            sender_domain=row) and f"Activated {row.domain}: mail is sent from it.", queryset)

    @admin.action(description="Deactivate (send from the platform sender)",
                  permissions=["manage"])
    def deactivate(self, request, queryset) -> None:
        _report(self, request, "deactivate", lambda row: services.sender_domain_deactivate(
            sender_domain=row) and f"Deactivated {row.domain}: mail is sent from the "
            "platform's address.", queryset)


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
