from django.urls import include, path, re_path
from rest_framework.routers import SimpleRouter

from hepstore.converters import ID_REGEX
from reinterpret.api import combinations, views

ID = f"(?P<pk>{ID_REGEX})"
router = SimpleRouter()
router.trailing_slash = "/?"
router.register("jobs", views.JobViewSet, basename="api-job")

# Every path is served with and without the trailing slash.
urlpatterns = [
    re_path(
        rf"^likelihoods/{ID}/signals/result/?$",
        views.PointResultByValuesView.as_view(),
        name="api-point-result-by-values",
    ),
    re_path(
        rf"^likelihoods/{ID}/signals/(?P<name>[^/]+)/result/?$",
        views.PointResultView.as_view(),
        name="api-point-result",
    ),
    re_path(
        rf"^likelihoods/{ID}/signals/(?P<name>[^/]+)/(?P<kind>yields|pulls)"
        r"\.(?P<fmt>svg|png|pdf)$",
        views.PointFigureView.as_view(),
        name="api-point-figure",
    ),
    re_path(
        rf"^likelihoods/{ID}/custom/(?P<digest>[^/]+)/result/?$",
        views.CustomResultView.as_view(),
        name="api-custom-result",
    ),
    re_path(
        rf"^likelihoods/{ID}/custom/(?P<digest>[0-9a-f]{{64}})/(?P<kind>yields|pulls)"
        r"\.(?P<fmt>svg|png|pdf)$",
        views.CustomFigureView.as_view(),
        name="api-custom-figure",
    ),
    re_path(
        rf"^likelihoods/{ID}/reinterpret/?$",
        views.ReinterpretView.as_view(),
        name="api-reinterpret",
    ),
    re_path(rf"^likelihoods/{ID}/scan/?$", views.ScanView.as_view(), name="api-scan"),
    re_path(
        r"^combinations/?$", combinations.CombinationListView.as_view(), name="api-combinations"
    ),
    re_path(
        r"^combinations/validate/?$",
        combinations.CombinationValidateView.as_view(),
        name="api-combination-validate",
    ),
    re_path(
        rf"^combinations/{ID}/?$",
        combinations.CombinationDetailView.as_view(),
        name="api-combination",
    ),
    re_path(
        rf"^combinations/{ID}/points/?$",
        combinations.CombinationPointsView.as_view(),
        name="api-combination-points",
    ),
    re_path(
        rf"^combinations/{ID}/points/(?P<name>[^/]+)/result/?$",
        combinations.CombinationPointResultView.as_view(),
        name="api-combination-point-result",
    ),
    re_path(
        rf"^combinations/{ID}/reinterpret/?$",
        combinations.CombinationReinterpretView.as_view(),
        name="api-combination-reinterpret",
    ),
    re_path(
        rf"^combinations/{ID}/scan/?$",
        combinations.CombinationScanView.as_view(),
        name="api-combination-scan",
    ),
    re_path(
        rf"^combinations/{ID}/scans/(?P<job>{ID_REGEX})/contour.svg$",
        combinations.CombinationContourView.as_view(),
        name="api-combination-contour",
    ),
    path("", include(router.urls)),
]
