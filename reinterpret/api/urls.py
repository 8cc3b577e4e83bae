from django.urls import path

from reinterpret.api import views

urlpatterns = [
    path(
        "likelihoods/<int:pk>/signals/result",
        views.point_result_by_values,
        name="api-point-result-by-values",
    ),
    path(
        "likelihoods/<int:pk>/signals/<str:name>/result",
        views.point_result,
        name="api-point-result",
    ),
    path("likelihoods/<int:pk>/reinterpret", views.reinterpret, name="api-reinterpret"),
    path("likelihoods/<int:pk>/scan", views.scan, name="api-scan"),
    path("jobs/", views.job_list, name="api-jobs"),
    path("jobs/<int:pk>", views.job_detail, name="api-job"),
    path("jobs/<int:pk>/cancel", views.job_cancel, name="api-job-cancel"),
    path("jobs/<int:pk>/contour.svg", views.job_contour_svg, name="api-job-contour"),
]
