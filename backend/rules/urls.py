"""The rules room's URLs, included from backend/urls.py and backend/metrics/urls.py."""

from django.urls import path

from backend.rules import api

ruler_urlpatterns = [
    path("", api.RulerView.as_view(), name="ruler-all"),
    path("<str:namespace>", api.RulerView.as_view(), name="ruler-namespace"),
    path("<str:namespace>/<str:group>", api.RulerView.as_view(), name="ruler-group"),
]

targets_urlpatterns = [
    path("targets", api.TargetsView.as_view(), name="alerting-targets"),
]
