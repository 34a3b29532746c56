from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import TemplateView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from leaderboard.views import model_card, model_registry

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
    path("api/v1/", include("arenasite.api_urls")),
    path("leaderboard/", include("leaderboard.urls")),
    path("models/", model_registry, name="model-registry"),
    path("models/<int:pk>/", model_card, name="model-card"),
    path("transparency/", include("transparency.urls")),
    path("arena/", include("battles.urls")),
    path("data/", include("releases.urls")),
    path("portal/", include("portal.urls")),
    re_path(r"^api/", api_not_found),
]

admin.site.site_header = "Arenasite administration"
admin.site.site_title = "Arenasite admin"
admin.site.index_title = "Governance"
# The model lists are wide (lifecycle dates, health); give them the whole page.
admin.site.enable_nav_sidebar = False

# Any unhandled error, from any layer: 503 with Retry-After when the database is out of reach.
handler500 = "arenasite.errors.server_error"
