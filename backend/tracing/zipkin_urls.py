from django.urls import path

from backend.tracing import zipkin_api

urlpatterns = [
    path("api/v2/services", zipkin_api.ServicesView.as_view(), name="zipkin-services"),
    path("api/v2/spans", zipkin_api.SpanNamesView.as_view(), name="zipkin-span-names"),
    path(
        "api/v2/remoteServices",
        zipkin_api.RemoteServicesView.as_view(),
        name="zipkin-remote-services",
    ),
    path("api/v2/traces", zipkin_api.TracesView.as_view(), name="zipkin-traces"),
    path("api/v2/trace/<str:trace_id>", zipkin_api.TraceView.as_view(), name="zipkin-trace"),
    path("api/v2/dependencies", zipkin_api.DependenciesView.as_view(), name="zipkin-dependencies"),
]
