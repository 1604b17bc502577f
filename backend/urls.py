from csp.decorators import csp_update
from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.urls import include, path
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerSplitView,
)

from backend import health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    # The write path (ingest/) is wired in here, at the project's root URLconf, by name only.
    path("", include("ingest.urls")),
    path("api/v1/", include("backend.tenancy.urls")),
    path("", include("backend.tracing.api.urls")),
    path("prometheus/api/v1/", include("backend.metrics.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # Behind login; Swagger UI's start-up script is a file (the CSP runs no inline script);
    # ReDoc's page has one inline script, allowed on that page only.
    path(
        "api/docs/",
        login_required(SpectacularSwaggerSplitView.as_view(url_name="schema")),
        name="api-docs",
    ),
    path(
        "api/redoc/",
        login_required(
            csp_update({"script-src": ["'self'", "'unsafe-inline'"]})(
                SpectacularRedocView.as_view(url_name="schema")
            )
        ),
        name="api-redoc",
    ),
    path("admin/", admin.site.urls),
    path("", include("web.urls")),
]
