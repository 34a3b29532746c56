"""API tokens: staff issue them (shown once) and revoke them; a token acts as its user."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import ForeignKey, QuerySet
from django.forms import ModelChoiceField
from django.http import HttpRequest

from arenasite.mfa import session_used_second_factor
from providers.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "prefix", "created_at", "last_used_at", "expires_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter), "staff"]
    search_fields = ["name", "prefix", "user__email", "user__username"]
    autocomplete_fields = ["user"]
    readonly_fields = ["prefix", "created_at", "last_used_at"]
    actions = ["revoke"]

    def get_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> tuple[str, ...]:
        if obj is None:
            return ("user", "name")
        return (
            "user",
            "name",
            "prefix",
            "created_at",
            "last_used_at",
            "staff",
            "second_factor",
            "expires_at",
            "revoked_at",
        )

    def get_readonly_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> list[str]:
        if obj is None:
            return []
        fixed = ["user", "name", "prefix", "created_at", "last_used_at", "staff", "second_factor", "expires_at"]
        # Revocation is final: a token that may have leaked must not be brought back to life.
        return [*fixed, "revoked_at"] if obj.revoked_at else fixed

    def formfield_for_foreignkey(
        self, db_field: ForeignKey[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> ModelChoiceField[Any] | None:
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "user" and not request.user.is_superuser:
            # A token acts as its user: staff may issue tokens for themselves only.
            assert field is not None and field.queryset is not None  # a foreign key's form field has both
            field.queryset = field.queryset.filter(pk=request.user.pk)
        return field

    def get_form(
        self, request: HttpRequest, obj: ApiToken | None = None, change: bool = False, **kwargs: Any
    ) -> type[forms.ModelForm[Any]]:
        form = super().get_form(request, obj, change, **kwargs)
        if obj is not None:
            return form
        second_factor = session_used_second_factor(request, request.user)

        # A class per request, for the second factor of this session (mypy cannot take a base from a variable).
        class IssueForm(form):  # type: ignore[valid-type, misc]
            def clean(self) -> dict[str, Any]:
                cleaned: dict[str, Any] = super().clean()
                user = cleaned.get("user")
                if user is not None and (problem := ApiToken.objects.refusal(user=user, second_factor=second_factor)):
                    raise forms.ValidationError(problem)
                return cleaned

        return IssueForm

    def save_model(self, request: HttpRequest, obj: ApiToken, form: Any, change: bool) -> None:
        if change:
            return super().save_model(request, obj, form, change)
        second_factor = session_used_second_factor(request, request.user)
        token, raw = ApiToken.objects.issue(user=obj.user, name=obj.name, second_factor=second_factor)
        obj.pk = token.pk
        obj.refresh_from_db()
        self.message_user(request, f"Token created. Copy it now, it will not be shown again: {raw}", messages.WARNING)

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        count = sum(token.revoke() for token in queryset.filter(revoked_at__isnull=True))
        self.message_user(request, f"{count} token(s) revoked.")
