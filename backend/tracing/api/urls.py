"""The tracing query APIs' URLs, at the project root: Jaeger's under ``jaeger/``, Zipkin's under
``zipkin/``, where their clients expect them."""

from django.urls import path

from backend.tracing.api import jaeger, jaeger_v3, zipkin

urlpatterns = [
    path("jaeger/api/services", jaeger.ServicesView.as_view(), name="jaeger-services"),
    path(
        "jaeger/api/services/<str:service>/operations",
        jaeger.ServiceOperationsView.as_view(),
        name="jaeger-service-operations",
    ),
    path("jaeger/api/operations", jaeger.OperationsView.as_view(), name="jaeger-operations"),
    path("jaeger/api/dependencies", jaeger.DependenciesView.as_view(), name="jaeger-dependencies"),
    path("jaeger/api/traces", jaeger.TracesView.as_view(), name="jaeger-traces"),
    path("jaeger/api/traces/<str:trace_id>", jaeger.TraceView.as_view(), name="jaeger-trace"),
    path(
        "jaeger/api/traces/<str:trace_id>/critical-path",
        jaeger.CriticalPathView.as_view(),
        name="jaeger-critical-path",
    ),
    path("jaeger/api/v3/services", jaeger_v3.ServicesView.as_view(), name="jaeger-v3-services"),
    path(
        "jaeger/api/v3/operations",
        jaeger_v3.OperationsView.as_view(),
        name="jaeger-v3-operations",
    ),
    path("jaeger/api/v3/traces", jaeger_v3.TracesView.as_view(), name="jaeger-v3-traces"),
    path(
        "jaeger/api/v3/traces/<str:trace_id>",
        jaeger_v3.TraceView.as_view(),
        name="jaeger-v3-trace",
    ),
    path("zipkin/api/v2/services", zipkin.ServicesView.as_view(), name="zipkin-services"),
    path("zipkin/api/v2/spans", zipkin.SpanNamesView.as_view(), name="zipkin-span-names"),
    path(
        "zipkin/api/v2/remoteServices",
        zipkin.RemoteServicesView.as_view(),
        name="zipkin-remote-services",
    ),
    path("zipkin/api/v2/traces", zipkin.TracesView.as_view(), name="zipkin-traces"),
    path("zipkin/api/v2/trace/<str:trace_id>", zipkin.TraceView.as_view(), name="zipkin-trace"),
    path(
        "zipkin/api/v2/dependencies",
        zipkin.DependenciesView.as_view(),
        name="zipkin-dependencies",
    ),
]
