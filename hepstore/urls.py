from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from hepstore import views
from reinterpret import combination_views
from reinterpret import views as reinterpret_views

urlpatterns = [
    path("", views.analysis_list, name="analysis-list"),
    path("analyses/<int:pk>/", views.analysis_detail, name="analysis-detail"),
    path("record/ins<int:inspire_id>", views.record_page, name="record"),
    path("likelihoods/<int:pk>/", views.likelihood_detail, name="likelihood-detail"),
    path(
        "likelihoods/<int:pk>/signals/<str:name>/",
        reinterpret_views.point_page,
        name="point-result",
    ),
    path("combinations/", combination_views.combination_list, name="combination-list"),
    path("combinations/<int:pk>/", combination_views.combination_detail, name="combination-detail"),
    path(
        "combinations/<int:pk>/points/<str:name>/",
        combination_views.combination_point,
        name="combination-point",
    ),
    path("validate", views.validate_page, name="validate"),
    path("search", views.search_page, name="search"),
    path("admin/", admin.site.urls),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/v1/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/v1/", include("reinterpret.api.urls")),
    path("api/v1/", include("hepstore.api.urls")),
]
