from django.contrib import admin

from .models import ModelRating, RatingRun


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
    readonly_fields = ["state", "method", "parameters", "cutoff", "last_vote_id", "vote_count", "started_at",
                       "finished_at", "published_at", "duration_seconds", "error"]


@admin.register(ModelRating)
class ModelRatingAdmin(ReadOnlyAdmin):
    """Every rated model, including those in initial rating that the public never sees."""

    list_display = ["arena_model", "category", "rating", "ci_lower", "ci_upper", "rank", "votes", "model_status", "run"]
    list_filter = ["category", "model_status", "run__state"]
    list_select_related = ["arena_model", "run"]
    search_fields = ["arena_model__name", "arena_model__codename"]
    ordering = ["-run_id", "category", "-rating"]
    show_full_result_count = False
