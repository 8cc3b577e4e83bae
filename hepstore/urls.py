from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from hepstore import views
from reinterpret import views as reinterpret_views

urlpatterns = [
    path("", views.analysis_list, name="analysis-list"),
    path("analyses/<int:pk>/", views.analysis_detail, name="analysis-detail"),
    path("likelihoods/<int:pk>/", views.likelihood_detail, name="likelihood-detail"),
    path(
        "likelihoods/<int:pk>/signals/<str:name>/",
        reinterpret_views.point_page,
        name="point-result",
    ),
    path(
        "likelihoods/<int:pk>/custom/<str:digest>/",
        reinterpret_views.custom_point_page,
        name="custom-point",
    ),
    path("validate", views.validate_page, name="validate"),
    path("search", views.search_page, name="search"),
    path("admin/", admin.site.urls),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/v1/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/v1/", include("reinterpret.api.urls")),
    path("api/v1/", include("hepstore.api.urls")),
]
