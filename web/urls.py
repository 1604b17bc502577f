from django.contrib.auth import views as auth_views
from django.urls import path, re_path

from web import api, meshconfig_views, views

app_name = "web"

urlpatterns = [
    path("", views.home, name="home"),
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="registration/login.html", redirect_authenticated_user=True
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("metrics", views.metrics, name="metrics"),
    path("traces", views.traces, name="traces"),
    path("traces/map", views.traces_map, name="traces-map"),
    path("traces/map/graph", api.ServiceGraphView.as_view(), name="traces-graph"),
    re_path(r"^traces/(?P<trace_id>[0-9a-fA-F]{1,32})$", views.trace, name="trace"),
    path("orgs/switch", views.switch_org, name="switch-org"),
    path("settings/tokens", views.tokens, name="tokens"),
    path("settings/tokens/<int:pk>/revoke", views.token_revoke, name="token-revoke"),
    path("settings/members", views.members, name="members"),
    path("mesh", meshconfig_views.clusters, name="mesh-clusters"),
    path("mesh/clusters", meshconfig_views.cluster_create, name="mesh-cluster-create"),
    path(
        "mesh/clusters/<str:name>/delete",
        meshconfig_views.cluster_delete,
        name="mesh-cluster-delete",
    ),
    path(
        "mesh/clusters/<str:name>/token",
        meshconfig_views.cluster_token_rotate,
        name="mesh-cluster-token",
    ),
    path("mesh/editor", meshconfig_views.editor, name="mesh-editor"),
    path("mesh/revisions", meshconfig_views.revisions, name="mesh-revisions"),
    path("mesh/rollouts", meshconfig_views.rollout, name="mesh-rollout"),
    path(
        "mesh/revisions/<int:number>/rollback",
        meshconfig_views.rollback,
        name="mesh-rollback",
    ),
    path("mesh/telemetry", meshconfig_views.telemetry, name="mesh-telemetry"),
]
