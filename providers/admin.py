from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import Case, Count, IntegerField, Value, When
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html

from arenasite import clock
from arenasite.admin_mixins import ConfirmThenDecideMixin, DecisionForm, ReadOnlyAdminMixin, decision_action
from arenasite.mfa import session_used_second_factor

from . import changes, names
from .lifecycle import (
    MOVES,
    REASON_MAX_LENGTH,
    REASON_REQUIRED,
    STAFF_RETIREMENT_RULES,
    Action,
    TransitionRefused,
    preview,
    transition,
)
from .models import ApiToken, ArenaModel, ChangeRequest, LifecycleEvent, Membership, Provider, RetirementRule

Status = ArenaModel.Status

# Addresses typed without a scheme are taken as https (Django 6's default; silences its warning).
_URL_FIELDS = {models.URLField: {"assume_scheme": "https"}}


def _https_formfield(field, **kwargs):
    """Form fields for a ModelForm class built outside an admin (whose overrides then do not apply)."""
    return field.formfield(**{**_URL_FIELDS.get(type(field), {}), **kwargs})


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
    formfield_overrides = _URL_FIELDS

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(_members=Count("memberships", distinct=True), _models=Count("models", distinct=True))
        )

    @admin.display(description="members", ordering="_members")
    def member_count(self, obj):
        return obj._members

    @admin.display(description="models", ordering="_models")
    def model_count(self, obj):
        return obj._models


class LifecycleEventInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = LifecycleEvent
    extra = 0
    can_delete = False
    fields = ["created_at", "action", "kind", "from_status", "to_status", "effective_at", "actor", "rule", "reason"]
    readonly_fields = fields
    ordering = ["created_at", "id"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("actor")

    def has_view_permission(self, request, obj=None):
        # The log is part of the model's record: whoever may see the model sees its history.
        return request.user.has_perm("providers.view_arenamodel") or request.user.has_perm(
            "providers.change_arenamodel"
        )


class HealthFilter(admin.SimpleListFilter):
    title = "endpoint health"
    parameter_name = "health"

    def lookups(self, request, model_admin):
        return [
            ("alert", "Offline inside listing window"),
            ("candidate", "Retirement candidate"),
            ("offline", "Offline"),
            ("ok", "Online"),
        ]

    def queryset(self, request, queryset):
        match self.value():
            case "alert":
                return queryset.offline_in_listing_window(clock.now())
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

    def lookups(self, request, model_admin):
        return [("listing", "Listing after heads-up"), ("retirement", "Retirement")]

    def queryset(self, request, queryset):
        if self.value() == "listing":
            return queryset.filter(list_after__isnull=False)
        if self.value() == "retirement":
            return queryset.filter(retire_after__isnull=False)
        return queryset


class ArenaModelForm(forms.ModelForm):
    endpoint_api_key = forms.CharField(
        label="Endpoint API key",
        required=False,
        max_length=1000,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Stored encrypted and never shown again. Leave empty to keep the current key.",
    )
    clear_endpoint_api_key = forms.BooleanField(label="Remove the stored API key", required=False)

    class Meta:
        model = ArenaModel
        fields = [
            "provider",
            "name",
            "family",
            "access_kind",
            "licence",
            "description",
            "knowledge_cutoff",
            "heads_up_requested",
            "is_demo",
            "endpoint_base_url",
            "endpoint_model_id",
            "endpoint_api_key",
            "temperature",
            "sampling_weight",
            "battle_targets",
        ]
        formfield_callback = _https_formfield

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The stored key never goes back to the browser, not even as the field's initial value;
        # this also keeps the change history from claiming the key changed on every save.
        self.initial["endpoint_api_key"] = ""
        # The model's help texts name settings; staff need the values in force.
        for name, text in _help_texts_in_force().items():
            if name in self.fields:
                self.fields[name].help_text = text

    def clean_endpoint_api_key(self):
        value = self.cleaned_data["endpoint_api_key"]
        if not value and self.instance.pk:
            return self.instance.endpoint_api_key  # keep what is stored
        return value

    def clean_name(self):
        # The rules providers meet (providers/names.py): reserved names, one name per provider,
        # one name among public models.
        name = self.cleaned_data["name"]
        if self.instance.pk and name == self.instance.name:
            return name
        provider = self.cleaned_data.get("provider") or (self.instance.provider if self.instance.pk else None)
        refusal = names.name_refusal(name, provider=provider, exclude_pk=self.instance.pk)
        if refusal:
            raise forms.ValidationError(refusal)
        return name

    def clean_battle_targets(self):
        targets = self.cleaned_data["battle_targets"]
        if self.instance.pk and any(target.pk == self.instance.pk for target in targets):
            raise forms.ValidationError("A model cannot be its own battle target.")
        return targets

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("clear_endpoint_api_key"):
            cleaned["endpoint_api_key"] = ""
        return cleaned


def _help_texts_in_force() -> dict[str, str]:
    days = settings.ARENA_HEADS_UP_DAYS
    return {
        "family": "Variants of one model line share a family (set by staff, e.g. at admission). When the provider "
        "lists one of them, the kept ratings of the others become public "
        f"{settings.ARENA_RETRACTION_DELAY_DAYS} days later (ARENA_RETRACTION_DELAY_DAYS). Empty: the model is a "
        "family of its own.",
        "heads_up_requested": f"The provider asked for notice: listing waits {days} day{'s' if days != 1 else ''} "
        "after the decision (ARENA_HEADS_UP_DAYS).",
        "sampling_weight": "Weight in the draw of anonymous battles, above 0 (default 1; a higher weight means more "
        "battles, though not proportionally more). A model in initial rating is drawn "
        f"{settings.ARENA_NEW_MODEL_BOOST:g} times as often as this weight says until it has "
        f"{settings.ARENA_NEW_MODEL_BOOST_VOTES} counted votes "
        "(ARENA_NEW_MODEL_BOOST, ARENA_NEW_MODEL_BOOST_VOTES).",
        "battle_targets": "Preferred opponents: when this model is drawn first, its opponent comes from these (those "
        f"in the battle pool) {settings.ARENA_BATTLE_TARGET_SHARE:.0%} of the time (ARENA_BATTLE_TARGET_SHARE).",
    }


class ReasonForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        max_length=REASON_MAX_LENGTH,
        required=False,
        help_text="Kept in the model's lifecycle log.",
    )
    rule = forms.ChoiceField(
        choices=[(rule.value, rule.label) for rule in RetirementRule if rule in STAFF_RETIREMENT_RULES],
        initial=RetirementRule.STAFF_DECISION,
        required=False,
        help_text="The retirement rule applied; shown publicly in the model registry. A rule other than a staff "
        "decision is checked: the model must meet it.",
    )

    def __init__(self, *args, required: bool, with_rule: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["reason"].required = required
        if not with_rule:
            del self.fields["rule"]


# Models waiting for a decision come first, then the blind test, then the rest.
_QUEUE_ORDER = Case(
    When(status=Status.SUBMITTED, then=Value(0)),
    When(status=Status.INITIAL_RATING, then=Value(1)),
    When(status=Status.DRAFT, then=Value(3)),
    default=Value(2),
    output_field=IntegerField(),
)


def _changelist_action(action: Action):
    """An admin action that asks for the reason on a confirmation page, then applies."""

    def run(modeladmin, request, queryset):
        return modeladmin._confirm_or_apply(request, queryset, action)

    run.__name__ = action.value.replace("-", "_")
    return admin.action(description=f"{action.label}…", permissions=["transition"])(run)


@admin.register(ArenaModel)
class ArenaModelAdmin(admin.ModelAdmin):
    form = ArenaModelForm
    formfield_overrides = _URL_FIELDS
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
        (
            "Lifecycle",
            {
                "fields": [
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
                ]
            },
        ),
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
    actions = [_changelist_action(action) for action in Action]
    change_form_template = "admin/providers/arenamodel/change_form.html"

    # -- display -----------------------------------------------------------------

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        return format_html('<span class="lifecycle lifecycle-{}">{}</span>', obj.status, obj.get_status_display())

    @admin.display(description="health")
    def health(self, obj):
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
    def pending(self, obj):
        if obj.list_after:
            return f"listing {obj.list_after:%Y-%m-%d %H:%M}"
        if obj.retire_after:
            return f"retirement {obj.retire_after:%Y-%m-%d %H:%M}"
        return ""

    @admin.display(description="listing window ends")
    def listing_window_ends(self, obj):
        ends = obj.listing_window_ends_at
        return date_format(timezone.localtime(ends), "DATETIME_FORMAT") if ends else "-"

    @admin.display(description="change waiting for staff")
    def pending_change(self, obj):
        change = changes.pending_change(obj) if obj.pk else None
        if change is None:
            return "none (a change of access or endpoint of a model in the arena waits for staff here)"
        url = reverse("admin:providers_changerequest_change", args=[change.pk])
        return format_html(
            '<a href="{}">{}</a>, asked for {}', url, change.describe(), f"{change.requested_at:%Y-%m-%d %H:%M}"
        )

    @admin.display(description="stored API key")
    def api_key_state(self, obj):
        return "set (hidden)" if obj.endpoint_api_key else "not set"

    # -- saving ----------------------------------------------------------------------

    def save_model(self, request, obj, form, change):
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
            outcome = changes.model_edit(model_id=obj.pk, actor=request.user, values=routed)
        except TransitionRefused as exc:
            self.message_user(request, f"Access and endpoint unchanged ({exc.rule}): {exc.detail}", messages.ERROR)
            return
        if outcome.change is not None:
            self.message_user(request, outcome.describe() + " Decide it under Access or endpoint changes.")
        obj.refresh_from_db()

    # -- permissions ---------------------------------------------------------------

    def has_transition_permission(self, request):
        return request.user.has_perm("providers.transition_arenamodel")

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # models carry an audit log; retire them instead
        return actions

    def has_delete_permission(self, request, obj=None):
        # Only a model with no history (a draft never submitted) may be deleted.
        if obj is not None and obj.events.exists():
            return False
        return super().has_delete_permission(request, obj)

    # -- transitions -----------------------------------------------------------------

    def get_urls(self):
        view = self.admin_site.admin_view(self.transition_view)
        return [
            path("<int:object_id>/transition/<str:action>/", view, name="providers_arenamodel_transition"),
            *super().get_urls(),
        ]

    def transition_view(self, request, object_id, action):
        """The change page's buttons: one model, one action, a reason."""
        if action not in Action.values:
            self.message_user(request, f"Unknown action {action!r}.", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:providers_arenamodel_changelist"))
        if not self.has_transition_permission(request):
            self.message_user(
                request, "You lack the permission to move models through their lifecycle.", messages.ERROR
            )
            return HttpResponseRedirect(reverse("admin:providers_arenamodel_change", args=[object_id]))
        model = get_object_or_404(ArenaModel, pk=object_id)
        if not self.has_view_or_change_permission(request, model):
            raise PermissionDenied
        change_url = reverse("admin:providers_arenamodel_change", args=[model.pk])
        response = self._confirm_or_apply(
            request, ArenaModel.objects.filter(pk=model.pk), Action(action), cancel_url=change_url
        )
        return response or HttpResponseRedirect(change_url)

    def _confirm_or_apply(self, request, queryset, action: Action, cancel_url: str = ""):
        form = ReasonForm(
            request.POST if "confirm" in request.POST else None,
            required=action in REASON_REQUIRED,
            with_rule=action == Action.RETIRE,
        )
        if form.is_bound and form.is_valid():
            self._apply(request, queryset, action, form.cleaned_data["reason"], form.cleaned_data.get("rule", ""))
            return None
        from_changelist = request.resolver_match.url_name == "providers_arenamodel_changelist"
        chosen_rule = request.POST.get("rule", "") if action == Action.RETIRE else ""
        context = {
            **self.admin_site.each_context(request),
            "title": f"{action.label}: confirm",
            "opts": self.model._meta,
            "action": action,
            "action_name": action.value.replace("-", "_"),
            "target": Status(MOVES[action][1]).label,
            "models": [
                (model, preview(model_id=model.pk, action=action, actor=request.user, rule=chosen_rule))
                for model in queryset.select_related("provider")
            ],
            "form": form,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            "from_changelist": from_changelist,
            "cancel_url": cancel_url or request.get_full_path(),
        }
        return TemplateResponse(request, "admin/providers/arenamodel/transition_confirm.html", context)

    def _apply(self, request, queryset, action: Action, reason: str, rule: str = "") -> None:
        for model in queryset:
            try:
                outcome = transition(model_id=model.pk, action=action, actor=request.user, reason=reason, rule=rule)
            except TransitionRefused as exc:
                self.message_user(request, f"{model.name}: refused ({exc.rule}): {exc.detail}", messages.ERROR)
                continue
            level = messages.SUCCESS if outcome.changed else messages.INFO
            self.message_user(request, outcome.describe(), level)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        obj = self.get_object(request, object_id)
        if obj is not None and self.has_transition_permission(request):
            extra_context["transitions"] = [a for a in Action if obj.status in MOVES[a][0]]
        return super().change_view(request, object_id, form_url, extra_context)


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
    fields = [
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
    ]
    readonly_fields = fields

    def has_decide_permission(self, request):
        return changes.may_decide(request.user)

    @admin.display(description="change")
    def summary(self, obj):
        return obj.describe()

    @admin.display(description="model status")
    def model_status(self, obj):
        return obj.arena_model.get_status_display()

    def decision_context(self, request, queryset) -> dict:
        return {"changes": queryset.select_related("arena_model", "arena_model__provider", "requested_by")}

    def decide(self, request, change: ChangeRequest, *, approve: bool, reason: str) -> None:
        service = changes.change_approve if approve else changes.change_refuse
        try:
            outcome = service(change_id=change.pk, actor=request.user, reason=reason)
        except TransitionRefused as exc:
            self.message_user(request, f"{change.arena_model}: refused ({exc.rule}): {exc.detail}", messages.ERROR)
            return
        if not outcome.changed:
            self.message_user(request, f"{change.arena_model}: already {outcome.change.state}.", messages.INFO)
            return
        self.message_user(
            request, f"{change.arena_model}: {outcome.change.describe()}: {outcome.change.state}.", messages.SUCCESS
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
    def short_reason(self, obj):
        return obj.reason if len(obj.reason) <= 80 else obj.reason[:79] + "…"


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "prefix", "created_at", "last_used_at", "expires_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter), "staff"]
    search_fields = ["name", "prefix", "user__email", "user__username"]
    autocomplete_fields = ["user"]
    readonly_fields = ["prefix", "created_at", "last_used_at"]
    actions = ["revoke"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["user", "name"]
        return [
            "user",
            "name",
            "prefix",
            "created_at",
            "last_used_at",
            "staff",
            "second_factor",
            "expires_at",
            "revoked_at",
        ]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        fixed = ["user", "name", "prefix", "created_at", "last_used_at", "staff", "second_factor", "expires_at"]
        # Revocation is final: a token that may have leaked must not be brought back to life.
        return [*fixed, "revoked_at"] if obj.revoked_at else fixed

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "user" and not request.user.is_superuser:
            # A token acts as its user: staff may issue tokens for themselves only.
            field.queryset = field.queryset.filter(pk=request.user.pk)
        return field

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        if obj is not None:
            return form
        second_factor = session_used_second_factor(request, request.user)

        class IssueForm(form):
            def clean(self):
                cleaned = super().clean()
                user = cleaned.get("user")
                if user is not None and (problem := ApiToken.objects.refusal(user=user, second_factor=second_factor)):
                    raise forms.ValidationError(problem)
                return cleaned

        return IssueForm

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        second_factor = session_used_second_factor(request, request.user)
        token, raw = ApiToken.objects.issue(user=obj.user, name=obj.name, second_factor=second_factor)
        obj.pk = token.pk
        obj.refresh_from_db()
        self.message_user(request, f"Token created. Copy it now, it will not be shown again: {raw}", messages.WARNING)

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke(self, request, queryset):
        count = sum(token.revoke() for token in queryset.filter(revoked_at__isnull=True))
        self.message_user(request, f"{count} token(s) revoked.")
