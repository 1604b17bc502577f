"""Grafana Mimir's cardinality API under ``/prometheus/api/v1/cardinality/``: the same numbers
as the usage page, scriptable. GET or form POST; parameters as Mimir takes them (``selector``,
``limit``, ``label_names[]``, ``count_method``); errors in the Prometheus envelope."""

from __future__ import annotations

import json

import promql_parser as pp
from django.http import HttpResponse

from backend.metrics import cardinality, promql
from backend.metrics.labels import Matcher
from backend.metrics.prometheus_api import PrometheusView
from backend.metrics.promql.evaluator import matchers_of
from backend.metrics.promql.parse import parse_expr, unwrap
from backend.metrics.promql.values import valid_label_name

COUNT_METHODS = ("inmemory", "active")


class CardinalityView(PrometheusView):
    def selector(self, *, required: bool) -> list[Matcher] | None:
        text = self.param("selector")
        if not text:
            if required:
                raise promql.BadData('invalid parameter "selector": a series selector is required')
            return None
        try:
            node = unwrap(parse_expr(text))
        except promql.BadData as exc:
            raise promql.BadData(f'invalid parameter "selector": {exc}') from None
        if not isinstance(node, pp.VectorSelector):
            raise promql.BadData(
                f'invalid parameter "selector": expected a series selector, got {text!r}'
            )
        return matchers_of(node)

    def limit(self) -> int:
        raw = self.param("limit")
        if raw in (None, ""):
            return cardinality.DEFAULT_LIMIT
        if not raw.isdigit() or not 0 <= int(raw) <= cardinality.MAX_LIMIT:
            raise promql.BadData(
                f'invalid parameter "limit": an integer from 0 to {cardinality.MAX_LIMIT}'
            )
        return int(raw)

    def count_method(self) -> None:
        method = self.param("count_method")
        if method and method not in COUNT_METHODS:
            raise promql.BadData(
                'invalid parameter "count_method": one of ' + ", ".join(COUNT_METHODS)
            )

    def handle(self):
        self.count_method()
        try:
            return success_flat(self.answer())
        except cardinality.TooManySeries as exc:
            raise promql.BadData(str(exc)) from None


def success_flat(payload: dict) -> HttpResponse:
    """Mimir's cardinality answers are bare objects, not the ``{status, data}`` envelope."""
    body = json.dumps(payload, separators=(",", ":"))
    return HttpResponse(body, content_type="application/json")


class LabelNamesCardinalityView(CardinalityView):
    def answer(self) -> dict:
        return cardinality.label_names_cardinality(
            org_id=self.org.pk,
            matchers=self.selector(required=False),
            limit=self.limit(),
            max_series=self.limits().max_series,
        )


class LabelValuesCardinalityView(CardinalityView):
    def answer(self) -> dict:
        names = list(dict.fromkeys(self.params("label_names[]")))
        if not names:
            raise promql.BadData('invalid parameter "label_names[]": at least one label name')
        if len(names) > cardinality.MAX_LABEL_NAMES:
            raise promql.BadData(
                f'invalid parameter "label_names[]": at most {cardinality.MAX_LABEL_NAMES}'
            )
        for name in names:
            if not valid_label_name(name):
                raise promql.BadData(f'invalid parameter "label_names[]": "{name}"')
        return cardinality.label_values_cardinality(
            org_id=self.org.pk,
            names=names,
            matchers=self.selector(required=False),
            limit=self.limit(),
            max_series=self.limits().max_series,
        )


class ActiveSeriesView(CardinalityView):
    def answer(self) -> dict:
        return cardinality.active_series(
            org_id=self.org.pk,
            matchers=self.selector(required=True),
            max_series=self.limits().max_series,
        )
