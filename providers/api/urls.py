from rest_framework.routers import SimpleRouter

from .views import ArenaModelViewSet

router = SimpleRouter(use_regex_path=False)
router.register("models", ArenaModelViewSet, basename="model")

urlpatterns = router.urls
