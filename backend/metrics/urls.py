from django.urls import path

from backend.metrics import prometheus_api as api

urlpatterns = [
    path("query", api.QueryView.as_view(), name="prom-query"),
    path("query_range", api.QueryRangeView.as_view(), name="prom-query-range"),
    path("series", api.SeriesView.as_view(), name="prom-series"),
    path("labels", api.LabelsView.as_view(), name="prom-labels"),
    path("label/<str:name>/values", api.LabelValuesView.as_view(), name="prom-label-values"),
    path("metadata", api.MetadataView.as_view(), name="prom-metadata"),
    path("query_exemplars", api.ExemplarsView.as_view(), name="prom-exemplars"),
    path("rules", api.RulesView.as_view(), name="prom-rules"),
    path("alerts", api.AlertsView.as_view(), name="prom-alerts"),
    path("status/buildinfo", api.BuildInfoView.as_view(), name="prom-buildinfo"),
    path("read", api.RemoteReadView.as_view(), name="prom-remote-read"),
]
