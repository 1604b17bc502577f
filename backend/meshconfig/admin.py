from django.contrib import admin

from backend.meshconfig.models import AgentReport, Cluster, ClusterStatus, Revision


@admin.register(Cluster)
class ClusterAdmin(admin.ModelAdmin):
    list_display = ("name", "org", "created_at")
    list_filter = ("org",)
    readonly_fields = ("agent_token",)

    def get_queryset(self, request):
        return Cluster.objects.unscoped().select_related("org")


@admin.register(Revision)
class RevisionAdmin(admin.ModelAdmin):
    list_display = ("number", "org", "digest", "message", "forced", "created_at")
    list_filter = ("org",)

    def get_queryset(self, request):
        return Revision.objects.unscoped().select_related("org")

    def has_change_permission(self, request, obj=None):
        return False  # append-only

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ClusterStatus)
class ClusterStatusAdmin(admin.ModelAdmin):
    list_display = ("cluster", "state", "desired", "applied", "last_seen")

    def get_queryset(self, request):
        return ClusterStatus.objects.unscoped().select_related("cluster", "desired", "applied")


@admin.register(AgentReport)
class AgentReportAdmin(admin.ModelAdmin):
    list_display = ("cluster", "attempt_id", "state", "created_at")

    def get_queryset(self, request):
        return AgentReport.objects.unscoped().select_related("cluster")
