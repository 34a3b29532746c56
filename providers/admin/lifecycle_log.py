"""The models' lifecycle log: on each model's page, and as a list of its own. Only the
lifecycle service writes it (providers/lifecycle.py)."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from arenasite.admin_mixins import ReadOnlyAdminMixin
from providers.models import LifecycleEvent


class LifecycleEventInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = LifecycleEvent
    extra = 0
    can_delete = False
    fields = ("created_at", "action", "kind", "from_status", "to_status", "effective_at", "actor", "rule", "reason")
    readonly_fields = fields
    ordering = ["created_at", "id"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[LifecycleEvent]:
        return super().get_queryset(request).select_related("actor")

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        # The log is part of the model's record: whoever may see the model sees its history.
        return request.user.has_perm("providers.view_arenamodel") or request.user.has_perm(
            "providers.change_arenamodel"
        )


@admin.register(LifecycleEvent)
class LifecycleEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The append-only log: readable by staff, changeable by no one."""

    list_display = [
        "created_at",
        "arena_model",
        "action",
        "kind",
        "from_status",
        "to_status",
        "effective_at",
        "actor",
        "rule",
        "short_reason",
    ]
    list_filter = ["action", "kind", "to_status", "rule"]
    list_select_related = ["arena_model", "actor"]
    search_fields = ["arena_model__name", "arena_model__codename", "reason", "actor__email"]
    date_hierarchy = "created_at"
    show_full_result_count = False

    @admin.display(description="reason")
    def short_reason(self, obj: LifecycleEvent) -> str:
        return obj.reason if len(obj.reason) <= 80 else obj.reason[:79] + "…"
