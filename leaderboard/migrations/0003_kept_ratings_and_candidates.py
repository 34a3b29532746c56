import django.db.models.deletion
from django.db import migrations, models
from django.db.models import Q


def keep_ratings_of_models_that_already_left(apps, schema_editor):
    """Models that left initial rating before ratings were kept get one from the record: the
    overall rating in the last run published before they left, and the votes cast until then."""
    ArenaModel = apps.get_model("providers", "ArenaModel")
    KeptRating = apps.get_model("leaderboard", "KeptRating")
    ModelRating = apps.get_model("leaderboard", "ModelRating")
    RatingRun = apps.get_model("leaderboard", "RatingRun")
    Vote = apps.get_model("battles", "Vote")
    left = ArenaModel.objects.filter(Q(listed_at__isnull=False) | Q(withdrawn_at__isnull=False))
    for model in left.filter(kept_rating__isnull=True):
        left_at = model.listed_at or model.withdrawn_at
        run = (
            RatingRun.objects.filter(state="published", published_at__lte=left_at)
            .order_by("-published_at", "-id")
            .first()
        )
        rating = ModelRating.objects.filter(run=run, category="overall", arena_model=model).first() if run else None
        counted = Vote.objects.filter(anony=True, excluded_reason="", created_at__lte=left_at)
        KeptRating.objects.create(
            arena_model=model,
            left_at=left_at,
            left_to="listed" if model.listed_at else "withdrawn",
            run=run if rating else None,
            rating=rating.rating if rating else None,
            ci_lower=rating.ci_lower if rating else None,
            ci_upper=rating.ci_upper if rating else None,
            rated_votes=rating.votes if rating else None,
            votes_before=counted.filter(model_a=model).count() + counted.filter(model_b=model).count(),
        )


class Migration(migrations.Migration):
    dependencies = [
        ("leaderboard", "0002_online_elo_pair_counts"),
        ("providers", "0004_fairness_rules"),
        ("battles", "0004_arena_flow"),
    ]

    operations = [
        migrations.CreateModel(
            name="RetirementCandidate",
            fields=[],
            options={
                "verbose_name": "retirement candidate",
                "proxy": True,
                "indexes": [],
                "constraints": [],
            },
            bases=("providers.arenamodel",),
        ),
        migrations.CreateModel(
            name="KeptRating",
            fields=[
                (
                    "arena_model",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.PROTECT,
                        primary_key=True,
                        related_name="kept_rating",
                        serialize=False,
                        to="providers.arenamodel",
                    ),
                ),
                ("left_at", models.DateTimeField(help_text="When the model left initial rating.")),
                ("left_to", models.CharField(help_text="listed or withdrawn", max_length=16)),
                ("rating", models.FloatField(blank=True, help_text="Overall rating in that run.", null=True)),
                ("ci_lower", models.FloatField(blank=True, null=True)),
                ("ci_upper", models.FloatField(blank=True, null=True)),
                (
                    "rated_votes",
                    models.PositiveIntegerField(blank=True, help_text="Votes behind the rating.", null=True),
                ),
                (
                    "votes_before",
                    models.PositiveIntegerField(
                        default=0,
                        help_text="Counted votes cast up to the moment it left; votes after listing are counted from here.",
                    ),
                ),
                (
                    "run",
                    models.ForeignKey(
                        blank=True,
                        help_text="The published run the rating comes from; empty when the model was never rated.",
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="leaderboard.ratingrun",
                    ),
                ),
            ],
            options={
                "ordering": ["-left_at"],
            },
        ),
        migrations.RunPython(keep_ratings_of_models_that_already_left, migrations.RunPython.noop),
    ]
