from django.urls import path

from reinterpret.api import combinations, views

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
    path("combinations/", combinations.combination_list, name="api-combinations"),
    path(
        "combinations/validate", combinations.combination_validate, name="api-combination-validate"
    ),
    path("combinations/<int:pk>", combinations.combination_detail, name="api-combination"),
    path(
        "combinations/<int:pk>/points",
        combinations.combination_points,
        name="api-combination-points",
    ),
    path(
        "combinations/<int:pk>/points/<str:name>/result",
        combinations.combination_point_result,
        name="api-combination-point-result",
    ),
    path(
        "combinations/<int:pk>/reinterpret",
        combinations.combination_reinterpret,
        name="api-combination-reinterpret",
    ),
    path("combinations/<int:pk>/scan", combinations.combination_scan, name="api-combination-scan"),
    path(
        "combinations/<int:pk>/scans/<int:job>/contour.svg",
        combinations.combination_contour_svg,
        name="api-combination-contour",
    ),
    path("jobs/", views.job_list, name="api-jobs"),
    path("jobs/<int:pk>", views.job_detail, name="api-job"),
    path("jobs/<int:pk>/cancel", views.job_cancel, name="api-job-cancel"),
    path("jobs/<int:pk>/contour.svg", views.job_contour_svg, name="api-job-contour"),
]
