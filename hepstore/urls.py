from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from hepstore import (
    converters,  # noqa: F401 - registers the <id:...> path converter
    health,
    views,
)
from hepstore.api.views import unknown_path
from reinterpret import combination_views
from reinterpret import views as reinterpret_views

urlpatterns = [
    path("", views.analysis_list, name="analysis-list"),
    path("analyses/<id:pk>/", views.analysis_detail, name="analysis-detail"),
    path("record/ins<id:inspire_id>", views.record_page, name="record"),
    path("likelihoods/<id:pk>/", views.likelihood_detail, name="likelihood-detail"),
    path(
        "likelihoods/<id:pk>/signals/<str:name>/",
        reinterpret_views.point_page,
        name="point-result",
    ),
    path(
        "likelihoods/<id:pk>/custom/<str:digest>/",
        reinterpret_views.custom_point_page,
        name="custom-point",
    ),
    path("combinations/", combination_views.combination_list, name="combination-list"),
    path("combinations/<id:pk>/", combination_views.combination_detail, name="combination-detail"),
    path(
        "combinations/<id:pk>/points/<str:name>/",
        combination_views.combination_point,
        name="combination-point",
    ),
    path("validate", views.validate_page, name="validate"),
    path("search", views.search_page, name="search"),
    path("healthz", health.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/v1/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("api/v1/", include("reinterpret.api.urls")),
    path("api/v1/", include("hepstore.api.urls")),
    # Last: any other path under the API answers the JSON error envelope.
    re_path(r"^api/v1/(?P<rest>[\s\S]*)$", unknown_path),
]
