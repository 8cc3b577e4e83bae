from django.urls import include, path, re_path
from rest_framework.routers import DefaultRouter

from hepstore.api import views

router = DefaultRouter()
# Accept paths with and without the trailing slash (the documented download paths have none).
router.trailing_slash = "/?"
router.register("analyses", views.AnalysisViewSet, basename="api-analysis")
router.register("likelihoods", views.LikelihoodViewSet, basename="api-likelihood")

urlpatterns = [
    re_path(r"^validate/?$", views.ValidateView.as_view(), name="api-validate"),
    re_path(r"^submissions/?$", views.SubmissionView.as_view(), name="api-submissions"),
    re_path(r"^search/?$", views.SearchView.as_view(), name="api-search"),
    re_path(
        r"^records/ins(?P<inspire_id>[0-9]{1,12})/?$", views.RecordView.as_view(), name="api-record"
    ),
    path("", include(router.urls)),
]
