from django.urls import path

from ingest.http.otlp_metrics import otlp_metrics_receive
from ingest.http.otlp_traces import otlp_traces_receive
from ingest.http.remote_write import remote_write_receive
from ingest.http.zipkin import zipkin_spans_receive

urlpatterns = [
    path("api/v1/push", remote_write_receive, name="remote-write"),
    path("api/prom/push", remote_write_receive, name="remote-write-legacy"),
    path("api/v1/write", remote_write_receive, name="remote-write-prometheus"),
    path("v1/traces", otlp_traces_receive, name="otlp-traces"),
    path("api/v2/spans", zipkin_spans_receive, name="zipkin-spans"),
    path("otlp/v1/metrics", otlp_metrics_receive, name="otlp-metrics"),
    path("v1/metrics", otlp_metrics_receive, name="otlp-metrics-default-path"),
]
