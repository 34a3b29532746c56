from rest_framework.routers import SimpleRouter

from .views import ArenaModelViewSet

router = SimpleRouter()
router.register("models", ArenaModelViewSet, basename="model")

urlpatterns = router.urls
