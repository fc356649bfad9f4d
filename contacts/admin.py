"""Admin for contacts: search by any identifier, push tokens inline. Input is normalised by
the same helpers as the API, and deleting goes through ``contact_delete`` (GDPR erase)."""

from django import forms
from django.contrib import admin
from unfold import admin as unfold_admin

from accounts.admin_base import AccountScopedAdmin, ScopedInline
from common.errors import HeraldError
from contacts.identifiers import email_normalize, phone_normalize, push_token_provider
from contacts.models import Contact, PushToken
from contacts.services import contact_delete


def _checked(normalize, value):
    if not value:
        return None
    try:
        return normalize(value)
    except HeraldError as exc:
        raise forms.ValidationError(exc.message) from None


class ContactForm(forms.ModelForm):
    avatar = forms.URLField(required=False, max_length=2048, assume_scheme="https")

    class Meta:
        model = Contact
        fields = ["account", "email", "phone", "external_id", "name", "avatar", "username",
                  "slack", "telegram", "discord", "meta"]

    def clean_email(self):
        return _checked(email_normalize, self.cleaned_data.get("email"))

    def clean_phone(self):
        return _checked(phone_normalize, self.cleaned_data.get("phone"))

    def clean(self):
        data = super().clean()
        for name in ("external_id", "slack", "telegram", "discord"):
            data[name] = data.get(name) or None  # "" would collide in the unique constraints
        return data


class PushTokenForm(forms.ModelForm):
    class Meta:
        model = PushToken
        fields = ["token"]

    def clean_token(self):
        token = self.cleaned_data["token"]
        try:
            self.instance.provider = push_token_provider(token)
        except HeraldError as exc:
            raise forms.ValidationError(exc.message) from None
        return token


class PushTokenInline(ScopedInline, unfold_admin.TabularInline):
    model = PushToken
    form = PushTokenForm
    extra = 0
    fields = ["token", "provider", "created_at"]
    readonly_fields = ["provider", "created_at"]


@admin.register(Contact)
class ContactAdmin(AccountScopedAdmin):
    form = ContactForm
    list_display = ["__str__", "email", "phone", "external_id", "account", "created_at"]
    search_fields = ["email", "name", "phone", "external_id", "id"]
    readonly_fields = ["id", "created_at", "updated_at"]
    inlines = [PushTokenInline]
    list_select_related = ["account"]
    date_hierarchy = "created_at"

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "account"] if obj else fields

    def delete_model(self, request, obj) -> None:
        contact_delete(contact=obj)

    def delete_queryset(self, request, queryset) -> None:
        for contact in queryset:
            contact_delete(contact=contact)
