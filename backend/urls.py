from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from backend import health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    # The write path (ingest/) is wired in here, at the project's root URLconf, by name only.
    path("", include("ingest.urls")),
    path("api/v1/", include("backend.tenancy.urls")),
    # The mesh agents' API; long polls go to its own server (backend/meshconfig/agent_server.py).
    path("api/v1/", include("backend.meshconfig.agent_urls")),
    path("", include("backend.tracing.api.urls")),
    path("prometheus/api/v1/", include("backend.metrics.urls")),
    path("api/v1/", include("backend.meshconfig.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    path("admin/", admin.site.urls),
    path("", include("web.urls")),
]
