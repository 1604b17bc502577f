from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from backend import health
from backend.rules import api as rules_api
from backend.rules import urls as rules_urls

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    # The write path (ingest/) is wired in here, at the project's root URLconf, by name only.
    path("", include("ingest.urls")),
    path("api/v1/", include("backend.tenancy.urls")),
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
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    path("admin/", admin.site.urls),
    path("", include("web.urls")),
]
