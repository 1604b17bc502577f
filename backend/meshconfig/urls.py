from django.urls import path

from backend.meshconfig import api

app_name = "meshconfig"

urlpatterns = [
    path("clusters", api.ClustersView.as_view(), name="clusters"),
    path("clusters/<str:name>", api.ClusterDetailView.as_view(), name="cluster"),
    path("config/validate", api.ValidateView.as_view(), name="validate"),
    path("config/revisions", api.RevisionsView.as_view(), name="revisions"),
    path("config/revisions/<int:number>", api.RevisionDetailView.as_view(), name="revision"),
    path(
        "config/revisions/<int:a>/diff/<int:b>",
        api.RevisionDiffView.as_view(),
        name="revision-diff",
    ),
    path("config/revisions/<int:number>/rollback", api.RollbackView.as_view(), name="rollback"),
    path("config/rollouts", api.RolloutsView.as_view(), name="rollouts"),
    path("config/status", api.StatusView.as_view(), name="status"),
    path("config/telemetry", api.TelemetryView.as_view(), name="telemetry"),
]
