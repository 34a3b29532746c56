"""Requests to change the access kind or endpoint of a model in the pool, decided by staff."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from arenasite.admin_mixins import ConfirmThenDecideMixin, DecisionForm, ReadOnlyAdminMixin, decision_action
from providers import changes
from providers.admin.staff import staff_user
from providers.lifecycle import REASON_MAX_LENGTH, TransitionRefused
from providers.models import ChangeRequest


class ChangeDecisionForm(DecisionForm):
    reason_help = "Kept in the model's lifecycle log, which the provider reads."
    reason_max_length = REASON_MAX_LENGTH


@admin.register(ChangeRequest)
class ChangeRequestAdmin(ConfirmThenDecideMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Requests to change the access kind or endpoint of a model in the pool. Staff with the
    lifecycle permission approve (the rules are checked again) or refuse them here; the rows
    themselves are written by providers.changes only."""

    list_display = ["requested_at", "arena_model", "model_status", "state", "summary", "requested_by", "decided_at"]
    list_filter = ["state"]
    list_select_related = ["arena_model", "requested_by"]
    search_fields = ["arena_model__name", "arena_model__codename", "endpoint_base_url", "endpoint_model_id"]
    ordering = ["-requested_at", "-id"]
    actions = [
        decision_action("Approve", "Approve the selected changes…", approve=True),
        decision_action("Refuse", "Refuse the selected changes…", approve=False),
    ]
    decision_form = ChangeDecisionForm
    decision_template = "admin/providers/changerequest/decide.html"
    decision_title = "{verb} access or endpoint changes"
    fields = (
        "arena_model",
        "state",
        "summary",
        "access_kind",
        "endpoint_base_url",
        "endpoint_model_id",
        "replaces_api_key",
        "previous",
        "requested_by",
        "requested_at",
        "decided_by",
        "decided_at",
        "decision_reason",
    )
    readonly_fields = fields

    def has_decide_permission(self, request: HttpRequest) -> bool:
        return changes.may_decide(request.user)

    @admin.display(description="change")
    def summary(self, obj: ChangeRequest) -> str:
        return obj.describe()

    @admin.display(description="model status")
    def model_status(self, obj: ChangeRequest) -> str:
        return obj.arena_model.get_status_display()

    def decision_context(self, request: HttpRequest, queryset: QuerySet[ChangeRequest]) -> dict[str, Any]:
        return {"changes": queryset.select_related("arena_model", "arena_model__provider", "requested_by")}

    def decide(self, request: HttpRequest, change: ChangeRequest, *, approve: bool, reason: str) -> None:
        service = changes.change_approve if approve else changes.change_refuse
        try:
            outcome = service(change_id=change.pk, actor=staff_user(request), reason=reason)
        except TransitionRefused as exc:
            self.message_user(request, f"{change.arena_model}: refused ({exc.rule}): {exc.detail}", messages.ERROR)
            return
        if not outcome.changed:
            self.message_user(request, f"{change.arena_model}: already {outcome.change.state}.", messages.INFO)
            return
        self.message_user(
            request, f"{change.arena_model}: {outcome.change.describe()}: {outcome.change.state}.", messages.SUCCESS
        )
