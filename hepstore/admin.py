"""The admin: collaborations and their members (membership is granted here), analyses with
their versions, likelihoods. An INSPIRE id claimed by the wrong collaboration is resolved on
the analysis's page: reassign it to another collaboration, or clear its INSPIRE id."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count

from hepstore.models import Analysis, AnalysisVersion, Collaboration, Likelihood


@admin.register(Collaboration)
class CollaborationAdmin(admin.ModelAdmin):
    list_display = ("name", "member_names", "analysis_count")
    search_fields = ("name", "members__username")
    filter_horizontal = ("members",)

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .prefetch_related("members")
            .annotate(n_analyses=Count("analyses", distinct=True))
        )

    @admin.display(description="members")
    def member_names(self, obj: Collaboration) -> str:
        return ", ".join(sorted(u.username for u in obj.members.all())) or "-"

    @admin.display(description="analyses", ordering="n_analyses")
    def analysis_count(self, obj: Collaboration) -> int:
        return obj.n_analyses


class VersionInline(admin.TabularInline):
    model = AnalysisVersion
    extra = 0
    can_delete = False
    fields = ("number", "created", "submitted_by", "note", "search_pending")
    readonly_fields = ("number", "created", "submitted_by")
    show_change_link = True


@admin.register(Analysis)
class AnalysisAdmin(admin.ModelAdmin):
    list_display = ("title", "collaboration", "inspire_id", "arxiv_id", "year", "created")
    list_filter = ("collaboration", "year")
    list_select_related = ("collaboration",)
    search_fields = ("title", "=inspire_id", "arxiv_id", "doi")
    readonly_fields = ("created",)
    inlines = [VersionInline]
    fieldsets = [
        (
            None,
            {
                "fields": ("title", "collaboration", "inspire_id"),
                "description": "The collaboration owns the analysis and its INSPIRE id: "
                "reassign it here when the id was claimed by the wrong collaboration "
                "(or clear the INSPIRE id), so the right members can submit.",
            },
        ),
        ("Publication", {"fields": ("abstract", "arxiv_id", "doi", "year", "keywords")}),
        (None, {"fields": ("created",)}),
    ]


class LikelihoodInline(admin.TabularInline):
    model = Likelihood
    extra = 0
    can_delete = False
    fields = ("region", "background", "patchset", "labels")
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(AnalysisVersion)
class AnalysisVersionAdmin(admin.ModelAdmin):
    list_display = ("analysis", "number", "created", "submitted_by", "search_pending")
    list_filter = ("search_pending", "analysis__collaboration")
    list_select_related = ("analysis", "submitted_by")
    search_fields = ("analysis__title", "note")
    readonly_fields = ("analysis", "number", "created", "submitted_by")
    inlines = [LikelihoodInline]
    actions = ["index_now"]

    def has_add_permission(self, request) -> bool:
        return False  # versions come from ingestion only

    @admin.action(description="Index the selected versions for search now")
    def index_now(self, request, queryset):
        from hepstore.services import index_pending

        queryset.update(search_pending=True)
        done = index_pending()
        self.message_user(request, f"indexed {done} version(s)")


@admin.register(Likelihood)
class LikelihoodAdmin(admin.ModelAdmin):
    list_display = ("__str__", "region", "point_count", "created")
    list_select_related = ("version__analysis",)
    search_fields = ("region", "version__analysis__title")
    readonly_fields = (
        "version",
        "region",
        "background",
        "patchset",
        "background_digest",
        "labels",
        "summary",
        "created",
    )

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(n_points=Count("signals"))

    @admin.display(description="signal points", ordering="n_points")
    def point_count(self, obj: Likelihood) -> int:
        return obj.n_points

    def has_add_permission(self, request) -> bool:
        return False
