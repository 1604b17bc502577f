"""Aggregation operators (``sum by (…) (…)`` and friends) over all steps at once: rows are
sorted by group and reduced with ``ufunc.reduceat`` along the series axis."""

from __future__ import annotations

import numpy as np
import promql_parser as pp

from backend.metrics.labels import METRIC_NAME, Labels, labels_key
from backend.metrics.promql.errors import BadData, ExecutionError
from backend.metrics.promql.parse import unwrap
from backend.metrics.promql.values import (
    Scalar,
    Vector,
    format_value,
    valid_label_name,
)


def _grouping(node: pp.AggregateExpr) -> tuple[bool, list[str]]:
    """(without?, label names)."""
    mod = node.modifier
    if mod is None:
        return False, []
    return mod.type == pp.AggModifierType.Without, list(mod.labels)


def _group_labels(labels: Labels, without: bool, names: list[str]) -> Labels:
    if without:
        drop = set(names) | {METRIC_NAME}
        return {k: v for k, v in labels.items() if k not in drop}
    return {k: labels[k] for k in names if labels.get(k)}


def _assign_groups(vec: Vector, without: bool, names: list[str]):
    keys: dict[tuple, int] = {}
    out_labels: list[Labels] = []
    g = np.empty(len(vec.labels), dtype=np.int64)
    for i, lab in enumerate(vec.labels):
        grouped = _group_labels(lab, without, names)
        key = labels_key(grouped)
        at = keys.get(key)
        if at is None:
            at = keys[key] = len(out_labels)
            out_labels.append(grouped)
        g[i] = at
    return g, out_labels


def _param(ev, node, ts) -> np.ndarray:
    value = ev.eval(node.param, ts)
    if not isinstance(value, Scalar):
        raise BadData(f"expected type scalar in aggregation parameter of {node.op}")
    return value.values


def evaluate(ev, node: pp.AggregateExpr, ts: np.ndarray):
    op = str(node.op)
    param = None
    if op in ("topk", "bottomk", "quantile"):
        param = _param(ev, node, ts)
    elif op == "count_values":
        inner = unwrap(node.param)
        if not isinstance(inner, pp.StringLiteral):
            raise BadData("expected a string parameter in count_values")
        param = inner.val
    vec = ev.eval(node.expr, ts)
    if not isinstance(vec, Vector):
        raise BadData(f"expected type instant vector in aggregation expression of {op}")
    vec = vec.nonempty()
    steps = len(ts)
    without, names = _grouping(node)
    if op == "count_values":
        return _count_values(vec, without, names, param, steps)
    if not vec.labels:
        return Vector.empty(steps)
    if op in ("topk", "bottomk"):
        return _top(vec, without, names, param, op == "topk", ev.instant)

    g, group_labels = _assign_groups(vec, without, names)
    shape = (len(group_labels), steps)
    values, present = vec.values, vec.present
    # Each (group, step) is one cell of a flat array; bincount adds the rows into their cells
    # one after another, in input order, like Prometheus's loop (the last bit of a sum can
    # decide which bucket a histogram_quantile lands in, so the order matters).
    cells = (g[:, None] * steps + np.arange(steps)).ravel()

    def group_sum(weights: np.ndarray) -> np.ndarray:
        return np.bincount(cells, weights.ravel(), minlength=shape[0] * steps).reshape(shape)

    count = group_sum(present.astype(np.float64))
    any_present = count > 0
    with np.errstate(all="ignore"):
        if op in ("sum", "avg", "stddev", "stdvar"):
            total = group_sum(np.where(present, values, 0.0))
            out = total if op == "sum" else total / count
            if op in ("stddev", "stdvar"):
                dev = np.where(present, values - out[g], 0.0)
                out = group_sum(dev * dev) / count
                out = out if op == "stdvar" else np.sqrt(out)
        elif op == "count":
            out = count
        elif op == "group":
            out = np.ones(shape)
        elif op in ("max", "min"):
            # NaN only where every value is NaN (fmax/fmin skip NaN), as Prometheus does.
            out = np.full(shape[0] * steps, np.nan)
            ufunc = np.fmax if op == "max" else np.fmin
            ufunc.at(out, cells, np.where(present, values, np.nan).ravel())
            out = out.reshape(shape)
        elif op == "quantile":
            out = _quantile_groups(values, present, g, len(group_labels), param)
        else:
            raise ExecutionError(f"unsupported aggregation {op!r}")
    return Vector(group_labels, np.where(any_present, out, 0.0), any_present)


def _column_order(key: np.ndarray, rank_class: np.ndarray) -> np.ndarray:
    """Row order of each column: by ``rank_class`` first, then ``key``, ties in input order."""
    order = np.argsort(key, axis=0, kind="stable")
    by_class = np.argsort(np.take_along_axis(rank_class, order, axis=0), axis=0, kind="stable")
    return np.take_along_axis(order, by_class, axis=0)


def _quantile_groups(values, present, g, groups: int, q) -> np.ndarray:
    out = np.empty((groups, values.shape[1]))
    by_group = np.argsort(g, kind="stable")
    bounds = np.searchsorted(g[by_group], np.arange(groups + 1))
    for i in range(groups):
        rows = by_group[bounds[i] : bounds[i + 1]]
        v, p = values[rows], present[rows]
        nan = np.isnan(v)
        # Go's sort.Float64s order (NaN first), absent entries last.
        order = _column_order(np.where(p & ~nan, v, 0.0), np.where(p, np.where(nan, 0, 1), 2))
        s = np.take_along_axis(v, order, axis=0)
        n = p.sum(axis=0)
        rank = q * (n - 1)
        lower = np.maximum(0, np.floor(np.nan_to_num(rank))).astype(np.int64)
        upper = np.minimum(np.maximum(n - 1, 0), lower + 1)
        lower = np.minimum(lower, np.maximum(n - 1, 0))
        weight = rank - np.floor(rank)
        cols = np.arange(values.shape[1])
        res = s[lower, cols] * (1 - weight) + s[upper, cols] * weight
        res = np.where(q < 0, -np.inf, np.where(q > 1, np.inf, res))
        out[i] = np.where(np.isnan(q), np.nan, res)
    return out


def _top(vec: Vector, without: bool, names: list[str], k_steps, top: bool, instant: bool):
    if np.isnan(k_steps).any() or (np.abs(k_steps) >= 2**63).any():
        bad = k_steps[np.isnan(k_steps) | (np.abs(k_steps) >= 2**63)][0]
        raise ExecutionError(f"Scalar value {format_value(bad)} overflows int64")
    k = np.trunc(k_steps).astype(np.int64)
    g, _ = _assign_groups(vec, without, names)
    selected = np.zeros_like(vec.present)
    rank_of = np.zeros(vec.present.shape, dtype=np.int64)
    for group in np.unique(g):
        rows = np.flatnonzero(g == group)
        v, p = vec.values[rows], vec.present[rows]
        nan = np.isnan(v)
        # Best first; NaN after every number; absent last; ties keep input order.
        key = np.where(p & ~nan, -v if top else v, 0.0)
        order = _column_order(key, np.where(p, np.where(nan, 1, 0), 2))
        ranks = np.empty_like(order)
        np.put_along_axis(ranks, order, np.arange(len(rows))[:, None], axis=0)
        selected[rows] = p & (ranks < k[None, :])
        rank_of[rows] = ranks
    keep = np.flatnonzero(selected.any(axis=1))
    if instant and len(keep) > 1:
        keep = keep[np.lexsort((rank_of[keep, 0], g[keep]))]
    return Vector([vec.labels[i] for i in keep], vec.values[keep], selected[keep])


def _count_values(vec: Vector, without: bool, names: list[str], label: str, steps: int):
    if not valid_label_name(label):
        raise ExecutionError(f'invalid label name "{label}"')
    rows, cols = np.nonzero(vec.present)
    if len(rows) == 0:
        return Vector.empty(steps)
    values = vec.values[rows, cols]
    uniq, value_id = np.unique(values, return_inverse=True, equal_nan=True)
    texts = [format_value(v) for v in uniq]
    keys: dict[tuple, int] = {}
    out_labels: list[Labels] = []
    group = np.empty(len(rows), dtype=np.int64)
    cache: dict[tuple[int, int], int] = {}
    for j, (r, vid) in enumerate(zip(rows.tolist(), value_id.ravel().tolist(), strict=True)):
        at = cache.get((r, vid))
        if at is None:
            lab = dict(vec.labels[r])
            lab[label] = texts[vid]
            grouped = _group_labels(lab, without, names if without else [*names, label])
            key = labels_key(grouped)
            at = keys.get(key)
            if at is None:
                at = keys[key] = len(out_labels)
                out_labels.append(grouped)
            cache[(r, vid)] = at
        group[j] = at
    counts = np.zeros((len(out_labels), steps))
    np.add.at(counts, (group, cols), 1.0)
    return Vector(out_labels, counts, counts > 0)
