from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.urls import path, re_path

from backend.observability.metrics import metrics_view
from web import api, invitations, meshconfig_views, rules_views, signup, views
from web.forms import LoginForm


def metrics_or_explorer(request):
    """Prometheus asks for its text formats (``Accept: application/openmetrics-text`` or
    ``text/plain``) and gets Canopy's self-metrics, where it scrapes by default; browsers
    (and anything else) get the dashboard's metrics explorer."""
    accept = request.headers.get("Accept", "")
    if "text/html" not in accept and ("openmetrics" in accept or "text/plain" in accept):
        return metrics_view(request)
    return views.metrics(request)


app_name = "web"

urlpatterns = [
    path("", views.home, name="home"),
    # Swagger UI over /api/schema/; its start-up script is a file (the CSP runs no inline script)
    path(
        "api/docs/",
        login_required(views.ApiDocsView.as_view(url_name="schema")),
        name="api-docs",
    ),
    path("overview/figures", views.overview_figures, name="overview-figures"),
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="registration/login.html",
            redirect_authenticated_user=True,
            authentication_form=LoginForm,
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("signup", signup.signup, name="signup"),
    path("signup/<str:token>", signup.signup_finish, name="signup-finish"),
    # /metrics: the dashboard's explorer for browsers, Canopy's own metrics for scrapers
    path("metrics", metrics_or_explorer, name="metrics"),
    path("traces", views.traces, name="traces"),
    path("alerts", rules_views.alerts, name="alerts"),
    path("rules", rules_views.rules, name="rules"),
    path("rules/delete", rules_views.rule_group_delete, name="rule-group-delete"),
    path("traces/map", views.traces_map, name="traces-map"),
    path("traces/map/graph", api.ServiceGraphView.as_view(), name="traces-graph"),
    path(
        "traces/services/activity",
        api.ServiceActivityView.as_view(),
        name="traces-service-activity",
    ),
    re_path(r"^traces/(?P<trace_id>[0-9a-fA-F]{1,32})$", views.trace, name="trace"),
    path("orgs/switch", views.switch_org, name="switch-org"),
    path("settings/tokens", views.tokens, name="tokens"),
    path("settings/tokens/<int:pk>/revoke", views.token_revoke, name="token-revoke"),
    path("settings/members", invitations.members, name="members"),
    path("settings/org/delete", invitations.org_delete, name="org-delete"),
    path(
        "settings/invitations/<int:pk>/revoke",
        invitations.invitation_revoke,
        name="invitation-revoke",
    ),
    path("invitations/<str:secret>", invitations.invitation, name="invitation"),
    path("mesh", views.mesh, name="mesh"),
    path("settings/usage", views.usage, name="usage"),
    path("mesh/<str:kind>/<str:namespace>/<str:name>", views.workload, name="workload"),
    path("mesh/graph", api.MeshGraphView.as_view(), name="mesh-graph"),
    path("config", meshconfig_views.clusters, name="config-clusters"),
    path("config/clusters", meshconfig_views.cluster_create, name="config-cluster-create"),
    path(
        "config/clusters/<str:name>/delete",
        meshconfig_views.cluster_delete,
        name="config-cluster-delete",
    ),
    path(
        "config/clusters/<str:name>/token",
        meshconfig_views.cluster_token_rotate,
        name="config-cluster-token",
    ),
    path("config/editor", meshconfig_views.editor, name="config-editor"),
    path("config/revisions", meshconfig_views.revisions, name="config-revisions"),
    path("config/rollouts", meshconfig_views.rollout, name="config-rollout"),
    path(
        "config/revisions/<int:number>/rollback",
        meshconfig_views.rollback,
        name="config-rollback",
    ),
    path("config/telemetry", meshconfig_views.telemetry, name="config-telemetry"),
]
