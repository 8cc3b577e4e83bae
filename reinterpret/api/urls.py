from django.urls import include, path, re_path
from rest_framework.routers import SimpleRouter

from hepstore.converters import ID_REGEX
from reinterpret.api import views

ID = f"(?P<pk>{ID_REGEX})"
router = SimpleRouter()
router.trailing_slash = "/?"
router.register("jobs", views.JobViewSet, basename="api-job")

# Every path is served with and without the trailing slash.
urlpatterns = [
    re_path(
        rf"^likelihoods/{ID}/signals/(?P<name>[^/]+)/result/?$",
        views.PointResultView.as_view(),
        name="api-point-result",
    ),
    re_path(
        rf"^likelihoods/{ID}/reinterpret/?$",
        views.ReinterpretView.as_view(),
        name="api-reinterpret",
    ),
    re_path(rf"^likelihoods/{ID}/scan/?$", views.ScanView.as_view(), name="api-scan"),
    path("", include(router.urls)),
]
