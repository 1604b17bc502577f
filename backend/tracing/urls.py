from django.urls import path

from backend.tracing import jaeger_api

urlpatterns = [
    path("api/services", jaeger_api.ServicesView.as_view(), name="jaeger-services"),
    path(
        "api/services/<str:service>/operations",
        jaeger_api.ServiceOperationsView.as_view(),
        name="jaeger-service-operations",
    ),
    path("api/operations", jaeger_api.OperationsView.as_view(), name="jaeger-operations"),
    path("api/dependencies", jaeger_api.DependenciesView.as_view(), name="jaeger-dependencies"),
    path("api/traces", jaeger_api.TracesView.as_view(), name="jaeger-traces"),
    path("api/traces/<str:trace_id>", jaeger_api.TraceView.as_view(), name="jaeger-trace"),
    path(
        "api/traces/<str:trace_id>/critical-path",
        jaeger_api.CriticalPathView.as_view(),
        name="jaeger-critical-path",
    ),
]
