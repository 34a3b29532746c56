from __future__ import annotations

import io

from django.conf import settings
from django.core.cache import cache
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import permissions, renderers, serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from arenasite.csv_safe import write_csv
from providers import access
from providers.models import ArenaModel

from .models import RatingRun
from .selectors import CSV_COLUMNS, board, category_votes, split_rated


class LeaderboardCSVRenderer(renderers.BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        rows = data.get("results") if isinstance(data, dict) and "results" in data else None
        out = io.StringIO()
        if rows is None:  # an error: still one readable line (it may quote the category asked for)
            detail = data.get("detail", data) if isinstance(data, dict) else data
            write_csv(out, ["detail"], [{"detail": str(detail)}])
            return out.getvalue().encode()
        write_csv(out, CSV_COLUMNS, rows)
        return out.getvalue().encode()


RowSerializer = inline_serializer(
    "LeaderboardRow",
    {
        "rank": serializers.IntegerField(),
        "model": serializers.CharField(),
        "rating": serializers.FloatField(),
        "ci_lower": serializers.FloatField(),
        "ci_upper": serializers.FloatField(),
        "votes": serializers.IntegerField(),
        "online_elo": serializers.FloatField(allow_null=True, help_text="Sequential Elo, overall category only."),
        "state": serializers.CharField(),
        "provider": serializers.CharField(),
        "licence": serializers.CharField(),
        "knowledge_cutoff": serializers.DateField(allow_null=True),
        "provisional": serializers.BooleanField(),
    },
)

UnratedSerializer = inline_serializer(
    "LeaderboardUnratedRow",
    {
        "model": serializers.CharField(),
        "votes": serializers.IntegerField(),
        "votes_needed": serializers.IntegerField(help_text="Counted votes still needed to be rated here."),
        "state": serializers.CharField(),
        "provider": serializers.CharField(),
        "licence": serializers.CharField(),
    },
)
UNRATED_FIELDS = ("model", "votes", "votes_needed", "state", "provider", "licence")

DESCRIPTION = (
    "The latest published leaderboard of one category, as the /leaderboard/ page shows it. A category is "
    "rated only from ARENA_LEADERBOARD_MIN_CATEGORY_VOTES counted votes, and a model in it only from "
    "ARENA_LEADERBOARD_MIN_MODEL_VOTES (both in `min_category_votes` and `min_model_votes`). `results` holds "
    "the rated models, ranked among themselves; a model under the minimum is not in `results` but in "
    "`unrated`, with its votes and how many more it needs, and no rank or rating. Below the category's "
    "minimum both are empty and `category_votes_needed` says how many more votes the category needs. The "
    "CSV (`format=csv`) is the `results` table: rated models only."
)


class LeaderboardApi(APIView):
    """The latest published leaderboard; read from the stored run, never computed on request."""

    permission_classes = [permissions.AllowAny]
    renderer_classes = [renderers.JSONRenderer, LeaderboardCSVRenderer]

    @extend_schema(
        description=DESCRIPTION,
        parameters=[
            OpenApiParameter("category", OpenApiTypes.STR, description="default: overall"),
            OpenApiParameter("include_retired", OpenApiTypes.BOOL),
            OpenApiParameter("format", OpenApiTypes.STR, enum=["json", "csv"]),
        ],
        responses={
            200: inline_serializer(
                "Leaderboard",
                {
                    "run": serializers.IntegerField(),
                    "published_at": serializers.DateTimeField(),
                    "cutoff": serializers.DateTimeField(),
                    "category": serializers.CharField(),
                    "categories": serializers.ListField(child=serializers.CharField()),
                    "category_votes": serializers.IntegerField(help_text="Counted votes in this category."),
                    "min_category_votes": serializers.IntegerField(),
                    "min_model_votes": serializers.IntegerField(),
                    "category_votes_needed": serializers.IntegerField(
                        help_text="Votes the category still needs to be rated; 0 once it is."
                    ),
                    "results": serializers.ListField(child=RowSerializer),
                    "unrated": serializers.ListField(child=UnratedSerializer),
                },
            )
        },
    )
    def get(self, request):
        category = request.query_params.get("category", "overall")
        include_retired = request.query_params.get("include_retired", "false").lower() in ("1", "true", "yes")
        run = RatingRun.objects.latest_published()
        if run is None:
            raise NotFound("No published leaderboard yet.")
        min_category, min_model = (
            settings.ARENA_LEADERBOARD_MIN_CATEGORY_VOTES,
            settings.ARENA_LEADERBOARD_MIN_MODEL_VOTES,
        )
        key = f"leaderboard:{run.pk}:{category}:{int(include_retired)}:{min_category}:{min_model}"
        data = cache.get(key)
        if data is None:
            categories = sorted(set(run.ratings.values_list("category", flat=True)))
            if category not in categories:
                raise ValidationError({"category": f"Unknown category {category!r}; known: {', '.join(categories)}."})
            # The page's minimums (leaderboard/views.py), with the page's functions: a model is
            # rated from min_model votes, ranked among the rated; a category from min_category.
            votes = category_votes(run, category)
            needed = max(0, min_category - votes)
            rated, unrated = split_rated(board(run, category, include_retired=include_retired), min_votes=min_model)
            if needed:
                rated, unrated = [], []
            data = {
                "run": run.pk,
                "published_at": run.published_at,
                "cutoff": run.cutoff,
                "category": category,
                "categories": categories,
                "category_votes": votes,
                "min_category_votes": min_category,
                "min_model_votes": min_model,
                "category_votes_needed": needed,
                "results": rated,
                "unrated": [{field: row[field] for field in UNRATED_FIELDS} for row in unrated],
            }
            # A run never changes once published: its pages can be cached until the next one.
            cache.set(key, data, timeout=3600)
        return Response(data)


class ModelRatingApi(APIView):
    """A model's ratings in the latest published run, for its provider's members and staff.

    This is how a provider sees its model's private rating during initial rating (and the
    heads-up day before listing); the public leaderboard never shows it.
    """

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        responses={
            200: inline_serializer(
                "ModelRatings",
                {
                    "model": serializers.IntegerField(),
                    "status": serializers.CharField(),
                    "run": serializers.IntegerField(allow_null=True),
                    "published_at": serializers.DateTimeField(allow_null=True),
                    "ratings": serializers.ListField(
                        child=inline_serializer(
                            "CategoryRating",
                            {
                                "category": serializers.CharField(),
                                "rating": serializers.FloatField(),
                                "ci_lower": serializers.FloatField(),
                                "ci_upper": serializers.FloatField(),
                                "sandwich_lower": serializers.FloatField(),
                                "sandwich_upper": serializers.FloatField(),
                                "votes": serializers.IntegerField(),
                            },
                        )
                    ),
                },
            )
        }
    )
    def get(self, request, pk: int):
        model = ArenaModel.objects.filter(pk=pk).first()
        if model is None or not access.sees_record(request.user, model):
            raise NotFound("Not found.")
        run = RatingRun.objects.latest_published()
        ratings = []
        if run is not None:
            ratings = list(
                run.ratings.filter(arena_model=model)
                .order_by("category")
                .values("category", "rating", "ci_lower", "ci_upper", "sandwich_lower", "sandwich_upper", "votes")
            )
        return Response(
            {
                "model": model.pk,
                "status": model.status,
                "run": run.pk if run else None,
                "published_at": run.published_at if run else None,
                "ratings": ratings,
            }
        )
