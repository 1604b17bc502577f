from django.urls import path

from ingest import remote_write_receiver, traces_http

urlpatterns = [
    path("api/v1/push", remote_write_receiver.push, name="remote-write"),
    path("api/prom/push", remote_write_receiver.push, name="remote-write-legacy"),
    path("api/v1/write", remote_write_receiver.push, name="remote-write-prometheus"),
    path("v1/traces", traces_http.otlp_traces, name="otlp-traces"),
    path("api/v2/spans", traces_http.zipkin_spans, name="zipkin-spans"),
]
