from django.urls import path

from backend.tracing import jaeger_api, jaeger_v3_api

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
    path("api/v3/services", jaeger_v3_api.ServicesView.as_view(), name="jaeger-v3-services"),
    path("api/v3/operations", jaeger_v3_api.OperationsView.as_view(), name="jaeger-v3-operations"),
    path("api/v3/traces", jaeger_v3_api.TracesView.as_view(), name="jaeger-v3-traces"),
    path("api/v3/traces/<str:trace_id>", jaeger_v3_api.TraceView.as_view(), name="jaeger-v3-trace"),
]
