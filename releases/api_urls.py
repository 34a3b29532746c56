from rest_framework.routers import SimpleRouter

from .api import AgreementViewSet, DownloadViewSet, ShareViewSet

router = SimpleRouter(use_regex_path=False)
router.register("agreements", AgreementViewSet, basename="agreement")
router.register("shares", ShareViewSet, basename="share")
router.register("downloads", DownloadViewSet, basename="download")

urlpatterns = router.urls
