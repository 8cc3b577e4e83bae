from django.urls import include, path
from rest_framework.routers import DefaultRouter

from hepstore.api import views

router = DefaultRouter()
# Accept paths with and without the trailing slash (the documented download paths have none).
router.trailing_slash = "/?"
router.register("analyses", views.AnalysisViewSet, basename="api-analysis")
router.register("likelihoods", views.LikelihoodViewSet, basename="api-likelihood")

urlpatterns = [
    path("validate", views.ValidateView.as_view(), name="api-validate"),
    path("submissions", views.SubmissionView.as_view(), name="api-submissions"),
    path("search/", views.SearchView.as_view(), name="api-search"),
    path("records/ins<int:inspire_id>", views.RecordView.as_view(), name="api-record"),
    path("", include(router.urls)),
]
