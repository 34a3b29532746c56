"""Providers and their members."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from providers.admin.forms import URL_FIELDS
from providers.models import Membership, Provider


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "website", "contact_email", "member_count", "model_count"]
    search_fields = ["name", "slug", "contact_email"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]
    formfield_overrides = URL_FIELDS

    def get_queryset(self, request: HttpRequest) -> QuerySet[Provider]:
        providers: QuerySet[Provider] = super().get_queryset(request)
        return providers.annotate(_members=Count("memberships", distinct=True), _models=Count("models", distinct=True))

    @admin.display(description="members", ordering="_members")
    def member_count(self, obj: Any) -> int:
        return int(obj._members)

    @admin.display(description="models", ordering="_models")
    def model_count(self, obj: Any) -> int:
        return int(obj._models)
