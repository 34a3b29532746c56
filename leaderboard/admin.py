from django.contrib import admin, messages
from django.db.models import Case, CharField, TextField, Value, When

from arenasite.admin_mixins import ReadOnlyAdminMixin
from providers.lifecycle import Action, TransitionRefused, transition
from providers.models import RetirementRule

from . import fairness
from .models import KeptRating, ModelRating, RatingRun, RetirementCandidate


class ReadOnlyAdmin(admin.ModelAdmin):
    """Runs are written by the recomputation only; staff read them."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(RatingRun)
class RatingRunAdmin(ReadOnlyAdmin):
    list_display = ["id", "state", "published_at", "cutoff", "vote_count", "duration_seconds", "method"]
    list_filter = ["state"]
    readonly_fields = [
        "state",
        "method",
        "parameters",
        "cutoff",
        "last_vote_id",
        "vote_count",
        "started_at",
        "finished_at",
        "published_at",
        "duration_seconds",
        "error",
    ]


@admin.register(ModelRating)
class ModelRatingAdmin(ReadOnlyAdmin):
    """Every rated model, including those in initial rating that the public never sees."""

    list_display = ["arena_model", "category", "rating", "ci_lower", "ci_upper", "rank", "votes", "model_status", "run"]
    list_filter = ["category", "model_status", "run__state"]
    list_select_related = ["arena_model", "run"]
    search_fields = ["arena_model__name", "arena_model__codename"]
    ordering = ["-run_id", "category", "-rating"]
    show_full_result_count = False


@admin.register(KeptRating)
class KeptRatingAdmin(ReadOnlyAdmin):
    """The ratings models left initial rating with: the record behind the no-retraction rule."""

    list_display = [
        "arena_model",
        "left_to",
        "left_at",
        "rating",
        "ci_lower",
        "ci_upper",
        "rated_votes",
        "votes_before",
        "run",
    ]
    list_filter = ["left_to"]
    list_select_related = ["arena_model", "run"]
    search_fields = ["arena_model__name", "arena_model__codename"]

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(RetirementCandidate)
class RetirementCandidateAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Listed models that meet a retirement rule, with the evidence; staff retire them under that rule."""

    list_display = ["name", "provider", "access_kind", "votes_counted", "listed_at", "rule", "evidence"]
    list_select_related = ["provider"]
    actions = ["retire_under_rule"]
    list_display_links = None

    def get_queryset(self, request):
        found = fairness.retirement_candidates()
        # The rule and evidence are computed in Python; they travel with the rows as annotations
        # so the list needs no per-row work and the admin instance keeps no per-request state.
        rules = [When(pk=pk, then=Value(rule)) for pk, (rule, _) in found.items()]
        evidence = [When(pk=pk, then=Value(text)) for pk, (_, text) in found.items()]
        queryset = super().get_queryset(request).filter(pk__in=list(found))
        if found:
            queryset = queryset.annotate(
                _rule=Case(*rules, default=Value(""), output_field=CharField()),
                _evidence=Case(*evidence, default=Value(""), output_field=TextField()),
            )
        return queryset

    @admin.display(description="rule")
    def rule(self, obj):
        return RetirementRule(obj._rule).label

    @admin.display(description="evidence")
    def evidence(self, obj):
        return obj._evidence

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("providers.view_arenamodel") or request.user.has_perm(
            "providers.change_arenamodel"
        )

    def has_transition_permission(self, request):
        return request.user.has_perm("providers.transition_arenamodel")

    @admin.action(description="Retire under the rule shown (evidence as the reason)", permissions=["transition"])
    def retire_under_rule(self, request, queryset):
        for model in queryset:
            try:
                outcome = transition(
                    model_id=model.pk,
                    action=Action.RETIRE,
                    actor=request.user,
                    reason=model._evidence,
                    rule=model._rule,
                )
            except TransitionRefused as exc:
                self.message_user(request, f"{model.name}: refused ({exc.rule}): {exc.detail}", messages.ERROR)
                continue
            self.message_user(request, outcome.describe(), messages.SUCCESS if outcome.changed else messages.INFO)
