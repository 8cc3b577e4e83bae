"""The admin lists reinterpretation jobs (state, progress, errors) and cached results."""

from __future__ import annotations

from django.contrib import admin

from reinterpret.models import CachedResult, Job


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "state", "likelihood", "progress", "attempts", "created")
    list_filter = ("state", "kind")
    list_select_related = ("likelihood__version__analysis",)
    readonly_fields = (
        "kind",
        "likelihood",
        "params",
        "progress_done",
        "progress_total",
        "result",
        "error",
        "attempts",
        "worker",
        "heartbeat",
        "created",
        "started",
        "finished",
    )

    @admin.display(description="progress")
    def progress(self, obj: Job) -> str:
        return f"{obj.progress_done}/{obj.progress_total}"

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(CachedResult)
class CachedResultAdmin(admin.ModelAdmin):
    list_display = ("key", "likelihood", "signal", "seconds", "created")
    list_select_related = ("likelihood__version__analysis",)
    search_fields = ("key", "signal")
    readonly_fields = ("key", "likelihood", "signal", "result", "inputs", "seconds", "created")

    def has_add_permission(self, request) -> bool:
        return False
