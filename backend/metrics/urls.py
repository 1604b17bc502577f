from django.urls import path

from backend.metrics import cardinality_api
from backend.metrics import prometheus_api as api

urlpatterns = [
    path("query", api.QueryView.as_view(), name="prom-query"),
    path("query_range", api.QueryRangeView.as_view(), name="prom-query-range"),
    path("series", api.SeriesView.as_view(), name="prom-series"),
    path("labels", api.LabelsView.as_view(), name="prom-labels"),
    path("label/<str:name>/values", api.LabelValuesView.as_view(), name="prom-label-values"),
    path("metadata", api.MetadataView.as_view(), name="prom-metadata"),
    path("query_exemplars", api.ExemplarsView.as_view(), name="prom-exemplars"),
    path("status/buildinfo", api.BuildInfoView.as_view(), name="prom-buildinfo"),
    path(
        "cardinality/label_names",
        cardinality_api.LabelNamesCardinalityView.as_view(),
        name="prom-cardinality-label-names",
    ),
    path(
        "cardinality/label_values",
        cardinality_api.LabelValuesCardinalityView.as_view(),
        name="prom-cardinality-label-values",
    ),
    path(
        "cardinality/active_series",
        cardinality_api.ActiveSeriesView.as_view(),
        name="prom-cardinality-active-series",
    ),
    path("read", api.RemoteReadView.as_view(), name="prom-remote-read"),
]
