from csp.decorators import csp_update
from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView

from backend import health
from backend.rules import api as rules_api
from backend.rules import urls as rules_urls

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    # The write path (ingest/) is wired in here, at the project's root URLconf, by name only.
    path("", include("ingest.urls")),
    path("api/v1/", include("backend.tenancy.urls")),
    # The mesh agents' API; long polls go to its own server (backend/meshconfig/agent_server.py).
    path("api/v1/", include("backend.meshconfig.agent_urls")),
    path("", include("backend.tracing.api.urls")),
    # The rules room answers two of the Prometheus API's paths (it reads metrics, not the reverse).
    path("prometheus/api/v1/rules", rules_api.RulesView.as_view(), name="prom-rules"),
    path("prometheus/api/v1/alerts", rules_api.AlertsView.as_view(), name="prom-alerts"),
    path("prometheus/api/v1/", include("backend.metrics.urls")),
    path("api/v1/", include("backend.meshconfig.urls")),
    path("prometheus/config/v1/rules/", include(rules_urls.ruler_urlpatterns)),
    path("prometheus/config/v1/rules", rules_api.RulerView.as_view()),
    path("api/v1/alerting/", include(rules_urls.targets_urlpatterns)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # Behind login. Swagger UI (/api/docs/, with the dashboard's header) is in web/urls.py;
    # ReDoc's page (the same header) has one inline script, allowed on that page only.
    path(
        "api/redoc/",
        login_required(
            csp_update({"script-src": ["'self'", "'unsafe-inline'"]})(
                SpectacularRedocView.as_view(url_name="schema", template_name="web/api_redoc.html")
            )
        ),
        name="api-redoc",
    ),
    path("admin/", admin.site.urls),
    path("", include("web.urls")),
]
