from django.urls import path, re_path

from reinterpret.api import views

urlpatterns = [
    path(
        "likelihoods/<int:pk>/signals/<str:name>/result",
        views.point_result,
        name="api-point-result",
    ),
    re_path(
        r"^likelihoods/(?P<pk>[0-9]+)/signals/(?P<name>[^/]+)/(?P<kind>yields|pulls)"
        r"\.(?P<fmt>svg|png|pdf)$",
        views.point_figure,
        name="api-point-figure",
    ),
    path(
        "likelihoods/<int:pk>/custom/<str:digest>/result",
        views.custom_result,
        name="api-custom-result",
    ),
    re_path(
        r"^likelihoods/(?P<pk>[0-9]+)/custom/(?P<digest>[0-9a-f]{64})/(?P<kind>yields|pulls)"
        r"\.(?P<fmt>svg|png|pdf)$",
        views.custom_figure,
        name="api-custom-figure",
    ),
    path("likelihoods/<int:pk>/reinterpret", views.reinterpret, name="api-reinterpret"),
    path("likelihoods/<int:pk>/scan", views.scan, name="api-scan"),
    path("jobs/", views.job_list, name="api-jobs"),
    path("jobs/<int:pk>", views.job_detail, name="api-job"),
    path("jobs/<int:pk>/cancel", views.job_cancel, name="api-job-cancel"),
    re_path(
        r"^jobs/(?P<pk>[0-9]+)/(?P<kind>exclusion|upper-limits)\.(?P<fmt>svg|png|pdf)$",
        views.job_figure,
        name="api-job-figure",
    ),
    re_path(
        r"^jobs/(?P<pk>[0-9]+)/contour\.(?P<fmt>json|csv)$",
        views.job_contour,
        name="api-job-contour",
    ),
]
