from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import TemplateView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from battles.api import (
    BattleCreateApi,
    BattleDetailApi,
    BattleRegenerateApi,
    BattleStopApi,
    BattleTurnApi,
    BattleVoteApi,
    ChallengeApi,
)
from battles.stream_api import battle_stream
from leaderboard.api import LeaderboardApi, ModelRatingApi
from leaderboard.views import model_card, model_registry
from releases.api import ReleaseDetailApi, ReleaseListApi

from .api import api_not_found
from .health import healthz

# The admin signs in through allauth's login, so admin logins are throttled, audited and ask for
# the second factor like every other login; a signed-in non-staff user gets 403. Set before
# admin.site.urls below is read, which binds the login view.
admin.site.login = secure_admin_login(admin.site.login)

urlpatterns = [
    path("", TemplateView.as_view(template_name="home.html"), name="home"),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its start-up script as a file: the page has no inline script (CSP).
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/", include("providers.api.urls")),
    path("api/v1/challenge/", ChallengeApi.as_view(), name="api-challenge"),
    path("api/v1/battles/", BattleCreateApi.as_view(), name="api-battles"),
    path("api/v1/battles/<str:battle_id>/", BattleDetailApi.as_view(), name="api-battle"),
    path("api/v1/battles/<str:battle_id>/stream/", battle_stream, name="api-battle-stream"),
    path("api/v1/battles/<str:battle_id>/turns/", BattleTurnApi.as_view(), name="api-battle-turns"),
    path("api/v1/battles/<str:battle_id>/vote/", BattleVoteApi.as_view(), name="api-battle-vote"),
    path("api/v1/battles/<str:battle_id>/stop/", BattleStopApi.as_view(), name="api-battle-stop"),
    path("api/v1/battles/<str:battle_id>/regenerate/", BattleRegenerateApi.as_view(), name="api-battle-regenerate"),
    path("api/v1/leaderboard/", LeaderboardApi.as_view(), name="api-leaderboard"),
    path("api/v1/models/<int:pk>/rating/", ModelRatingApi.as_view(), name="api-model-rating"),
    path("leaderboard/", include("leaderboard.urls")),
    path("models/", model_registry, name="model-registry"),
    path("models/<int:pk>/", model_card, name="model-card"),
    path("transparency/", include("transparency.urls")),
    path("arena/", include("battles.urls")),
    path("data/", include("releases.urls")),
    path("portal/", include("portal.urls")),
    path("api/v1/releases/", ReleaseListApi.as_view(), name="api-releases"),
    path("api/v1/releases/<int:pk>/", ReleaseDetailApi.as_view(), name="api-release"),
    path("api/v1/", include("releases.api_urls")),
    re_path(r"^api/", api_not_found),
]

admin.site.site_header = "Arenasite administration"
admin.site.site_title = "Arenasite admin"
admin.site.index_title = "Governance"
# The model lists are wide (lifecycle dates, health); give them the whole page.
admin.site.enable_nav_sidebar = False

# Any unhandled error, from any layer: 503 with Retry-After when the database is out of reach.
handler500 = "arenasite.errors.server_error"
