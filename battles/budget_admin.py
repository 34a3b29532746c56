"""Endpoint budgets in admin: staff set what each model may cost per day and see, for today,
what it has used and whether it has left the pool."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html

from arenasite import clock
from arenasite.admin_mixins import ReadOnlyAdminMixin

from .models import EndpointBudget, EndpointUsage


def _today(budget: EndpointBudget) -> EndpointUsage | None:
    return EndpointUsage.objects.filter(model_id=budget.model_id, day=clock.now().date()).first()


@admin.register(EndpointBudget)
class EndpointBudgetAdmin(admin.ModelAdmin):
    list_display = ["model", "daily_requests", "daily_characters", "used_today", "pool_today"]
    list_select_related = ["model"]
    autocomplete_fields = ["model"]
    search_fields = ["model__name", "model__codename"]
    readonly_fields = ["used_today", "pool_today"]

    @admin.display(description="used today (calls / characters)")
    def used_today(self, budget: EndpointBudget) -> str:
        usage = _today(budget)
        return f"{usage.requests:,} / {usage.characters:,}" if usage else "0 / 0"

    @admin.display(description="today")
    def pool_today(self, budget: EndpointBudget) -> str:
        usage = _today(budget)
        if usage is not None and usage.exhausted_at is not None:
            return format_html(
                "<strong>out of the pool</strong>: the budget ran out at {} UTC; back tomorrow",
                usage.exhausted_at.strftime("%H:%M"),
            )
        return "in the pool"


@admin.register(EndpointUsage)
class EndpointUsageAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["day", "model", "requests", "characters", "refused", "rate_limited", "exhausted_at"]
    list_filter = ["day", ("exhausted_at", admin.EmptyFieldListFilter)]
    list_select_related = ["model"]
    date_hierarchy = "day"
    show_full_result_count = False
