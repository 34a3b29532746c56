"""The models' admin: the queue of models waiting for staff, each model's record, its endpoint
and health. Lifecycle moves are providers/admin/transitions.py; access and endpoint changes
of a model in the pool go through providers.changes, as from the API."""

from __future__ import annotations

from typing import Any, cast

from django.contrib import admin, messages
from django.db.models import Case, IntegerField, QuerySet, Value, When
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.safestring import SafeString

from arenasite import clock
from providers import changes
from providers.admin.forms import URL_FIELDS, ArenaModelForm
from providers.admin.lifecycle_log import LifecycleEventInline
from providers.admin.staff import staff_user
from providers.admin.transitions import TransitionAdmin
from providers.lifecycle import TransitionRefused
from providers.models import ArenaModel, ArenaModelQuerySet

Status = ArenaModel.Status


class HealthFilter(admin.SimpleListFilter):
    title = "endpoint health"
    parameter_name = "health"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        return [
            ("alert", "Offline inside listing window"),
            ("candidate", "Retirement candidate"),
            ("offline", "Offline"),
            ("ok", "Online"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        match self.value():
            case "alert":
                # The changelist's rows come from ArenaModel.objects, whose querysets have this method.
                return cast(ArenaModelQuerySet, queryset).offline_in_listing_window(clock.now())
            case "candidate":
                return queryset.filter(retirement_candidate_since__isnull=False)
            case "offline":
                return queryset.filter(endpoint_offline_since__isnull=False)
            case "ok":
                return queryset.filter(endpoint_offline_since__isnull=True, endpoint_last_ok_at__isnull=False)
        return queryset


class ScheduledFilter(admin.SimpleListFilter):
    title = "scheduled"
    parameter_name = "scheduled"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        return [("listing", "Listing after heads-up"), ("retirement", "Retirement")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "listing":
            return queryset.filter(list_after__isnull=False)
        if self.value() == "retirement":
            return queryset.filter(retire_after__isnull=False)
        return queryset


# Models waiting for a decision come first, then the blind test, then the rest.
_QUEUE_ORDER = Case(
    When(status=Status.SUBMITTED, then=Value(0)),
    When(status=Status.INITIAL_RATING, then=Value(1)),
    When(status=Status.DRAFT, then=Value(3)),
    default=Value(2),
    output_field=IntegerField(),
)


# The lifecycle's own columns and dates: shown in their section of the form, never edited
# there (the lifecycle service moves a model).
LIFECYCLE_FIELDS = (
    "status",
    "status_changed_at",
    "votes_counted",
    "created_at",
    "submitted_at",
    "admitted_at",
    "list_after",
    "listed_at",
    "listing_window_ends",
    "retire_after",
    "retired_at",
    "withdrawn_at",
)


@admin.register(ArenaModel)
class ArenaModelAdmin(TransitionAdmin):
    form = ArenaModelForm
    formfield_overrides = URL_FIELDS
    list_display = [
        "name",
        "codename",
        "provider",
        "status_badge",
        "access_kind",
        "votes_counted",
        "sampling_weight",
        "health",
        "submitted_at",
        "listed_at",
        "pending",
    ]
    list_filter = ["status", "provider", "access_kind", HealthFilter, ScheduledFilter, "is_demo"]
    list_select_related = ["provider"]
    search_fields = ["name", "codename", "family", "provider__name", "endpoint_model_id"]
    # First come, first served within each group of the queue.
    ordering = [_QUEUE_ORDER.asc(), "submitted_at", "name"]
    autocomplete_fields = ["provider", "battle_targets"]
    inlines = [LifecycleEventInline]
    list_per_page = 50
    readonly_fields = [
        "codename",
        *LIFECYCLE_FIELDS,
        "api_key_state",
        "pending_change",
        "endpoint_last_checked_at",
        "endpoint_last_ok_at",
        "endpoint_offline_since",
        "endpoint_last_error",
        "retirement_candidate_since",
    ]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "provider",
                    "name",
                    "codename",
                    "family",
                    "access_kind",
                    "licence",
                    "description",
                    "knowledge_cutoff",
                    "heads_up_requested",
                    "is_demo",
                ]
            },
        ),
        ("Lifecycle", {"fields": LIFECYCLE_FIELDS}),
        ("Sampling", {"fields": ["sampling_weight", "battle_targets"]}),
        (
            "Endpoint",
            {
                "fields": [
                    "pending_change",
                    "endpoint_base_url",
                    "endpoint_model_id",
                    "api_key_state",
                    "endpoint_api_key",
                    "clear_endpoint_api_key",
                    "temperature",
                ]
            },
        ),
        (
            "Health",
            {
                "fields": [
                    "endpoint_last_checked_at",
                    "endpoint_last_ok_at",
                    "endpoint_offline_since",
                    "endpoint_last_error",
                    "retirement_candidate_since",
                ]
            },
        ),
    ]
    change_form_template = "admin/providers/arenamodel/change_form.html"

    # -- display -----------------------------------------------------------------

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: ArenaModel) -> SafeString:
        return format_html('<span class="lifecycle lifecycle-{}">{}</span>', obj.status, obj.get_status_display())

    @admin.display(description="health")
    def health(self, obj: ArenaModel) -> str:
        if obj.is_demo:
            return "demo"
        if obj.retirement_candidate_since:
            return format_html('<strong class="errornote-inline">{}</strong>', "retirement candidate")
        if obj.endpoint_offline_since:
            in_window = obj.listing_window_ends_at and obj.listing_window_ends_at > clock.now()
            label = "OFFLINE in listing window" if in_window else "offline"
            # format_html escapes its arguments into strings first, so dates are formatted here.
            since = f"{obj.endpoint_offline_since:%Y-%m-%d}"
            return format_html('<strong title="{}">{} since {}</strong>', obj.endpoint_last_error, label, since)
        return "online" if obj.endpoint_last_ok_at else "unchecked"

    @admin.display(description="pending")
    def pending(self, obj: ArenaModel) -> str:
        if obj.list_after:
            return f"listing {obj.list_after:%Y-%m-%d %H:%M}"
        if obj.retire_after:
            return f"retirement {obj.retire_after:%Y-%m-%d %H:%M}"
        return ""

    @admin.display(description="listing window ends")
    def listing_window_ends(self, obj: ArenaModel) -> str:
        ends = obj.listing_window_ends_at
        return date_format(timezone.localtime(ends), "DATETIME_FORMAT") if ends else "-"

    @admin.display(description="change waiting for staff")
    def pending_change(self, obj: ArenaModel) -> str:
        change = changes.pending_change(obj) if obj.pk else None
        if change is None:
            return "none (a change of access or endpoint of a model in the arena waits for staff here)"
        url = reverse("admin:providers_changerequest_change", args=[change.pk])
        return format_html(
            '<a href="{}">{}</a>, asked for {}', url, change.describe(), f"{change.requested_at:%Y-%m-%d %H:%M}"
        )

    @admin.display(description="stored API key")
    def api_key_state(self, obj: ArenaModel) -> str:
        return "set (hidden)" if obj.endpoint_api_key else "not set"

    # -- saving ----------------------------------------------------------------------

    def save_model(self, request: HttpRequest, obj: ArenaModel, form: Any, change: bool) -> None:
        """Access kind, endpoint and key go through providers.changes, as from the API: for a model
        in the pool a new access kind or endpoint becomes a request to approve under Access or
        endpoint changes, and a replaced key is logged. The other fields are saved here."""
        if not change:
            return super().save_model(request, obj, form, change)
        stored = ArenaModel.objects.get(pk=obj.pk)
        routed = {
            field: getattr(obj, field)
            for field in (*changes.REVIEWED_FIELDS, "endpoint_api_key")
            if getattr(obj, field) != getattr(stored, field)
        }
        for field in routed:
            setattr(obj, field, getattr(stored, field))
        super().save_model(request, obj, form, change)
        if not routed:
            return
        try:
            outcome = changes.model_edit(model_id=obj.pk, actor=staff_user(request), values=routed)
        except TransitionRefused as exc:
            self.message_user(request, f"Access and endpoint unchanged ({exc.rule}): {exc.detail}", messages.ERROR)
            return
        if outcome.change is not None:
            self.message_user(request, outcome.describe() + " Decide it under Access or endpoint changes.")
        obj.refresh_from_db()

    # -- permissions ---------------------------------------------------------------

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # models carry an audit log; retire them instead
        return actions

    def has_delete_permission(self, request: HttpRequest, obj: ArenaModel | None = None) -> bool:
        # Only a model with no history (a draft never submitted) may be deleted.
        if obj is not None and obj.events.exists():
            return False
        return super().has_delete_permission(request, obj)
