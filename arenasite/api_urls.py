"""Every route of the API under /api/v1/, in one place.

Resources are DRF ViewSets on one router: a collection, its items, and the verbs on an item
as the ViewSet's actions (a battle's turns, vote, stop and regenerate; a model's lifecycle
actions). Four endpoints are not a collection of a resource and are single views: the
battle's event stream (an async Django view: DRF's views are synchronous, and a viewer
waiting for the next piece must not hold a thread), the proof-of-work challenge, the
leaderboard and a model's latest ratings.
"""

from django.urls import path
from rest_framework.routers import SimpleRouter

from battles.api import BattleViewSet, ChallengeApi
from battles.stream_api import battle_stream
from leaderboard.api import LeaderboardApi, ModelRatingApi
from providers.api.views import ArenaModelViewSet
from releases.api import AgreementViewSet, DownloadViewSet, ReleaseViewSet, ShareViewSet

router = SimpleRouter(use_regex_path=False)
router.register("battles", BattleViewSet, basename="battle")
router.register("models", ArenaModelViewSet, basename="model")
router.register("releases", ReleaseViewSet, basename="release")
router.register("agreements", AgreementViewSet, basename="agreement")
router.register("shares", ShareViewSet, basename="share")
router.register("downloads", DownloadViewSet, basename="download")

urlpatterns = [
    path("challenge/", ChallengeApi.as_view(), name="api-challenge"),
    path("battles/<str:battle_id>/stream/", battle_stream, name="api-battle-stream"),
    path("leaderboard/", LeaderboardApi.as_view(), name="api-leaderboard"),
    path("models/<int:pk>/rating/", ModelRatingApi.as_view(), name="api-model-rating"),
    *router.urls,
]
