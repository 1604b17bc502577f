"""Prometheus 2.x's functions, vectorised over series and steps.

Range functions see, for each series and step, the window ``values[lo:hi]`` of its samples
(``Matrix.windows``). Sums over windows use ``ufunc.reduceat`` (each window summed on its
own, so no precision is lost to a running total); functions needing each window's samples
together (standard deviation, quantiles, regressions) expand the windows into one flat
array with a window id per element.
"""

from __future__ import annotations

import math

import numpy as np
import promql_parser as pp
import re2

from backend.metrics.labels import METRIC_NAME, Labels, anchored_regex
from backend.metrics.promql.errors import BadData, ExecutionError
from backend.metrics.promql.parse import unwrap
from backend.metrics.promql.values import (
    Matrix,
    Scalar,
    Vector,
    merge_rows,
    valid_label_name,
    without_name,
)

# -- window helpers ---------------------------------------------------------------------------


def _window_reduce(ufunc, values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """ufunc over each window [lo, hi) (any shape); empty windows give garbage, mask them."""
    flat_lo, flat_hi = lo.ravel(), hi.ravel()
    idx = np.empty(2 * len(flat_lo), dtype=np.int64)
    idx[0::2], idx[1::2] = flat_lo, flat_hi
    ext = np.append(values, 0.0)
    return ufunc.reduceat(ext, idx)[0::2].reshape(lo.shape)


def _expand(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sample index, window id) for every sample of every window (windows flattened)."""
    flat_lo, counts = lo.ravel(), (hi - lo).ravel()
    starts = np.cumsum(counts) - counts
    total = int(counts.sum())
    w = np.repeat(np.arange(len(flat_lo)), counts)
    idx = np.arange(total) - np.repeat(starts - flat_lo, counts)
    return idx, w


def _flag_count(flags: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """How many i in (lo, hi-1] have flags[i] (flags[i] compares sample i with i-1)."""
    csum = np.concatenate([[0], np.cumsum(flags, dtype=np.int64)])
    last = np.maximum(hi - 1, lo)
    return csum[last + 1] - csum[lo + 1]


# Windows with more resets than this add them with np.add.reduceat (local to the window, but
# not necessarily in Prometheus's order); fewer, one vectorised pass per reset rank.
_MAX_ORDERED_ADDS = 64


def _add_in_order(base: np.ndarray, addends: np.ndarray, k1: np.ndarray, k2: np.ndarray):
    """``base + addends[k1] + addends[k1 + 1] + … + addends[k2 - 1]`` per window, left to
    right (``k1 <= k2``, any shape)."""
    counts = k2 - k1
    most = int(counts.max()) if counts.size else 0
    if most == 0:
        return base
    if most > _MAX_ORDERED_ADDS:
        total = _window_reduce(np.add, addends, k1, k2)
        return np.where(counts > 0, base + total, base)
    out = base.copy()
    ext = np.append(addends, 0.0)
    with np.errstate(all="ignore"):  # Inf - Inf is NaN here as in Go, silently
        for j in range(most):
            has = counts > j
            out = np.where(has, out + ext[np.where(has, k1 + j, len(addends))], out)
    return out


def _welford_variance(v: np.ndarray, lo: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Prometheus's stdvar_over_time: Welford's running mean and sum of squares with Kahan
    (Neumaier) compensation, sample by sample in each window, all windows at once."""
    flat_lo, flat_n = lo.ravel(), n.ravel()
    k = len(flat_lo)
    count = np.zeros(k)
    mean, c_mean = np.zeros(k), np.zeros(k)
    aux, c_aux = np.zeros(k), np.zeros(k)
    ext = np.append(v, 0.0)
    most = int(flat_n.max()) if k else 0
    with np.errstate(all="ignore"):
        for j in range(most):
            has = flat_n > j
            x = ext[np.where(has, flat_lo + j, len(v))]
            new_count = count + 1
            delta = x - (mean + c_mean)
            new_mean, new_c_mean = _kahan_inc(delta / new_count, mean, c_mean)
            new_aux, new_c_aux = _kahan_inc(delta * (x - (new_mean + new_c_mean)), aux, c_aux)
            count = np.where(has, new_count, count)
            mean, c_mean = np.where(has, new_mean, mean), np.where(has, new_c_mean, c_mean)
            aux, c_aux = np.where(has, new_aux, aux), np.where(has, new_c_aux, c_aux)
        return ((aux + c_aux) / count).reshape(n.shape)


def _kahan_inc(inc: np.ndarray, total: np.ndarray, c: np.ndarray):
    t = total + inc
    c = c + np.where(np.abs(total) >= np.abs(inc), (total - t) + inc, (inc - t) + total)
    return t, c


def _linear_regression(
    t: np.ndarray, v: np.ndarray, idx: np.ndarray, w: np.ndarray, n: np.ndarray, x0: np.ndarray
):
    """Least-squares slope (per second) and intercept at x0 (ms) for each window."""
    k = len(n)
    x = (t[idx] - x0[w]) / 1000.0
    y = v[idx]
    with np.errstate(all="ignore"):
        sum_x = np.bincount(w, x, minlength=k)
        sum_y = np.bincount(w, y, minlength=k)
        sum_xy = np.bincount(w, x * y, minlength=k)
        sum_x2 = np.bincount(w, x * x, minlength=k)
        cov_xy = sum_xy - sum_x * sum_y / n
        var_x = sum_x2 - sum_x * sum_x / n
        slope = cov_xy / var_x
        intercept = sum_y / n - slope * sum_x / n
    # A constant series has slope 0 exactly (not a rounding error's worth).
    first = np.full(k, np.nan)
    first[w[::-1]] = y[::-1]
    const = np.bincount(w, y != first[w], minlength=k) == 0
    slope = np.where(const, np.where(np.isinf(first), np.nan, 0.0), slope)
    intercept = np.where(const, np.where(np.isinf(first), np.nan, first), intercept)
    return slope, intercept


def _quantile_sorted(
    sorted_values: np.ndarray, starts: np.ndarray, n: np.ndarray, q: np.ndarray
) -> np.ndarray:
    """Prometheus's quantile (linear interpolation between closest ranks) of windows whose
    values sit sorted at ``sorted_values[starts[i]:starts[i] + n[i]]``."""
    with np.errstate(invalid="ignore"):
        rank = q * (n - 1)
        lower = np.maximum(0, np.floor(np.nan_to_num(rank)))
        upper = np.minimum(n - 1, lower + 1)
        weight = rank - np.floor(rank)
    ext = np.append(sorted_values, np.nan)
    lo_i = np.clip(starts + lower.astype(np.int64), 0, len(ext) - 1)
    hi_i = np.clip(starts + upper.astype(np.int64), 0, len(ext) - 1)
    with np.errstate(invalid="ignore"):
        out = ext[lo_i] * (1 - weight) + ext[hi_i] * weight
    out = np.where(q < 0, -np.inf, out)
    out = np.where(q > 1, np.inf, out)
    return np.where(np.isnan(q), np.nan, out)


def _sort_windows(values: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Order of the expanded samples: by window, NaN first (Go's sort.Float64s), then value."""
    nan = np.isnan(values)
    return np.lexsort((np.where(nan, 0.0, values), ~nan, w))


# -- range functions ------------------------------------------------------------------------


def _extrapolated_rate(m, lo, hi, n, *, counter: bool, rate: bool):
    v, t = m.values, m.timestamps
    ok = n >= 2
    last_i = np.clip(hi - 1, 0, None)
    first_i = np.minimum(lo, last_i)
    first, last = v[first_i], v[last_i]
    with np.errstate(invalid="ignore"):
        result = last - first
    if counter:
        # Each reset inside a window adds the value before it, in order, as Prometheus's loop
        # does. Not a prefix sum over the history: one +Inf (or a sum that overflows, or a huge
        # value that rounds small ones away) would spread to every later window and series.
        resets = np.flatnonzero(v[1:] < v[:-1]) + 1
        k1 = np.searchsorted(resets, lo, side="right")
        k2 = np.maximum(np.searchsorted(resets, last_i, side="right"), k1)
        result = _add_in_order(result, v[resets - 1], k1, k2)
    range_end = m.ends[None, :]
    range_start = range_end - m.range_ms
    with np.errstate(all="ignore"):
        to_start = (t[first_i] - range_start) / 1000.0
        to_end = (range_end - t[last_i]) / 1000.0
        sampled = (t[last_i] - t[first_i]) / 1000.0
        average = sampled / (n - 1)
        if counter:
            to_zero = sampled * (first / result)
            use_zero = (result > 0) & (first >= 0) & (to_zero < to_start)
            to_start = np.where(use_zero, to_zero, to_start)
        threshold = average * 1.1
        interval = (
            sampled
            + np.where(to_start < threshold, to_start, average / 2)
            + np.where(to_end < threshold, to_end, average / 2)
        )
        factor = interval / sampled
        if rate:
            factor = factor / (m.range_ms / 1000.0)
        result = result * factor
    return result, ok


def _instant_rate(m, lo, hi, n, *, rate: bool):
    v, t = m.values, m.timestamps
    ok = n >= 2
    last_i = np.clip(hi - 1, 0, None)
    prev_i = np.clip(hi - 2, 0, None)
    last, prev = v[last_i], v[prev_i]
    with np.errstate(all="ignore"):
        if rate:
            result = np.where(last < prev, last, last - prev)
            dt = (t[last_i] - t[prev_i]) / 1000.0
            ok &= dt != 0
            result = result / dt
        else:
            result = last - prev
    return result, ok


def _over_time(name: str, m: Matrix, lo, hi, n, args: list[np.ndarray]):
    v, t = m.values, m.timestamps
    ok = n >= 1
    last_i = np.clip(hi - 1, 0, None)
    with np.errstate(all="ignore"):
        if name == "sum_over_time":
            return _window_reduce(np.add, v, lo, hi), ok
        if name == "avg_over_time":
            return _window_reduce(np.add, v, lo, hi) / n, ok
        if name == "count_over_time":
            return n.astype(np.float64), ok
        if name == "max_over_time":
            return _window_reduce(np.fmax, v, lo, hi), ok
        if name == "min_over_time":
            return _window_reduce(np.fmin, v, lo, hi), ok
        if name == "last_over_time":
            return v[last_i], ok
        if name == "present_over_time":
            return np.ones(n.shape), ok
        if name == "changes":
            prev_differs = np.zeros(len(v), dtype=bool)
            prev_differs[1:] = (v[1:] != v[:-1]) & ~(np.isnan(v[1:]) & np.isnan(v[:-1]))
            return _flag_count(prev_differs, lo, hi).astype(np.float64), ok
        if name == "resets":
            drops = np.zeros(len(v), dtype=bool)
            drops[1:] = v[1:] < v[:-1]
            return _flag_count(drops, lo, hi).astype(np.float64), ok
    idx, w = _expand(lo, hi)
    flat_n = n.ravel().astype(np.float64)
    shape = n.shape
    steps = shape[1]
    if name in ("stddev_over_time", "stdvar_over_time"):
        var = _welford_variance(v, lo, n)
        with np.errstate(invalid="ignore"):
            return (var if name == "stdvar_over_time" else np.sqrt(var)), ok
    if name == "quantile_over_time":
        q = np.tile(args[0], shape[0])
        order = _sort_windows(v[idx], w)
        starts = np.cumsum(flat_n.astype(np.int64)) - flat_n.astype(np.int64)
        return _quantile_sorted(v[idx][order], starts, flat_n, q).reshape(shape), ok
    if name in ("deriv", "predict_linear"):
        ok = n >= 2
        x0 = t[np.minimum(lo, last_i)].ravel() if name == "deriv" else np.tile(args[1], shape[0])
        slope, intercept = _linear_regression(t, v, idx, w, flat_n, x0)
        if name == "deriv":
            return slope.reshape(shape), ok
        return (slope * np.tile(args[0], shape[0]) + intercept).reshape(shape), ok
    if name == "holt_winters":
        return _holt_winters(v, lo, hi, n, args[0], args[1], steps), n >= 2
    raise ExecutionError(f"function {name!r} is not implemented")


def _holt_winters(v, lo, hi, n, sf_steps, tf_steps, steps):
    out = np.full(n.shape, np.nan)
    for (s, i), count in np.ndenumerate(n):
        if count < 2:
            continue
        sf, tf = sf_steps[i], tf_steps[i]
        if not 0 < sf < 1:
            raise ExecutionError(f"invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:f}")
        if not 0 < tf < 1:
            raise ExecutionError(f"invalid trend factor. Expected: 0 < tf < 1, got: {tf:f}")
        x = v[lo[s, i] : hi[s, i]].tolist()
        sf, tf = float(sf), float(tf)  # Python floats: Inf - Inf is NaN without a warning
        s0, s1, b = 0.0, x[0], x[1] - x[0]
        for j in range(1, len(x)):
            if j > 1:
                b = tf * (s1 - s0) + (1 - tf) * b
            s0, s1 = s1, sf * x[j] + (1 - sf) * (s1 + b)
        out[s, i] = s1
    return out


RANGE_FUNCTIONS = frozenset(
    {
        "rate",
        "increase",
        "delta",
        "irate",
        "idelta",
        "sum_over_time",
        "avg_over_time",
        "count_over_time",
        "max_over_time",
        "min_over_time",
        "last_over_time",
        "present_over_time",
        "stddev_over_time",
        "stdvar_over_time",
        "quantile_over_time",
        "changes",
        "resets",
        "deriv",
        "predict_linear",
        "holt_winters",
        "absent_over_time",
    }
)


def _range_function(ev, node: pp.Call, ts: np.ndarray):
    name = node.func.name
    matrix_at = next(i for i, a in enumerate(node.func.arg_types) if a == pp.ValueType.Matrix)
    scalars = [_scalar_arg(ev, a, ts) for i, a in enumerate(node.args) if i != matrix_at]
    m = ev.eval(node.args[matrix_at], ts)
    steps = len(ts)
    if name == "absent_over_time":
        lo, hi = m.windows()
        covered = (hi > lo).any(axis=0) if len(m.labels) else np.zeros(steps, dtype=bool)
        return _absent_result(node.args[0], ~covered)
    if not m.labels:
        return Vector.empty(steps)
    lo, hi = m.windows()
    n = hi - lo
    if len(m.values) == 0:
        return Vector.empty(steps)
    if name in ("rate", "increase", "delta"):
        values, ok = _extrapolated_rate(m, lo, hi, n, counter=name != "delta", rate=name == "rate")
    elif name in ("irate", "idelta"):
        values, ok = _instant_rate(m, lo, hi, n, rate=name == "irate")
    else:
        if name == "predict_linear":
            # The regression's intercept is at the evaluation time; under @ Prometheus
            # evaluates once, at the first step.
            arg = unwrap(node.args[matrix_at])
            at = arg.vector_selector.at if isinstance(arg, pp.MatrixSelector) else arg.at
            scalars = [scalars[0], ts if at is None else np.full_like(ts, ts[0])]
        values, ok = _over_time(name, m, lo, hi, n, scalars)
    ok = ok & (n > 0)
    labels = m.labels if name == "last_over_time" else [without_name(x) for x in m.labels]
    out = Vector(labels, np.where(ok, values, 0.0), ok).nonempty()
    if _stays_distinct(node.args[matrix_at], m.labels, keeps_name=name == "last_over_time"):
        return out
    return merge_rows(out.labels, out.values, out.present, per_step=False)


def _stays_distinct(arg, labels: list[Labels], *, keeps_name: bool) -> bool:
    """Whether a range function's rows need no merging: a range selector's series are
    distinct label sets (a querier's contract), which stay distinct when the metric name is
    kept, or dropped from series that all carry the same one."""
    if not isinstance(unwrap(arg), pp.MatrixSelector):
        return False
    return keeps_name or len({x.get(METRIC_NAME) for x in labels}) <= 1


# -- instant functions ------------------------------------------------------------------------

_MATH = {
    "abs": np.abs,
    "ceil": np.ceil,
    "floor": np.floor,
    "exp": np.exp,
    "sqrt": np.sqrt,
    "ln": np.log,
    "log2": np.log2,
    "log10": np.log10,
    "sgn": np.sign,
    "acos": np.arccos,
    "acosh": np.arccosh,
    "asin": np.arcsin,
    "asinh": np.arcsinh,
    "atan": np.arctan,
    "atanh": np.arctanh,
    "cos": np.cos,
    "cosh": np.cosh,
    "sin": np.sin,
    "sinh": np.sinh,
    "tan": np.tan,
    "tanh": np.tanh,
    "deg": np.degrees,
    "rad": np.radians,
}

_DATE = frozenset(
    {
        "day_of_month",
        "day_of_week",
        "day_of_year",
        "days_in_month",
        "hour",
        "minute",
        "month",
        "year",
    }
)


def _date_part(name: str, seconds: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(seconds)
        secs = np.where(finite, np.trunc(np.nan_to_num(seconds)), 0).astype(np.int64)
    moment = secs.astype("datetime64[s]")
    day = moment.astype("datetime64[D]")
    month = moment.astype("datetime64[M]")
    if name == "year":
        out = moment.astype("datetime64[Y]").astype(np.int64) + 1970
    elif name == "month":
        out = month.astype(np.int64) % 12 + 1
    elif name == "day_of_month":
        out = (day - month.astype("datetime64[D]")).astype(np.int64) + 1
    elif name == "day_of_week":
        out = (day.astype(np.int64) + 4) % 7
    elif name == "day_of_year":
        year = moment.astype("datetime64[Y]")
        out = (day - year.astype("datetime64[D]")).astype(np.int64) + 1
    elif name == "days_in_month":
        out = ((month + 1).astype("datetime64[D]") - month.astype("datetime64[D]")).astype(np.int64)
    elif name == "hour":
        out = (secs % 86400) // 3600
    else:  # minute
        out = (secs % 3600) // 60
    return np.where(finite, out.astype(np.float64), np.nan)


def _scalar_arg(ev, node, ts) -> np.ndarray:
    value = ev.eval(node, ts)
    if not isinstance(value, Scalar):
        raise BadData("expected a scalar argument")
    return value.values


def _string_arg(node) -> str:
    node = unwrap(node)
    if not isinstance(node, pp.StringLiteral):
        raise BadData("expected a string literal argument")
    return node.val


def _vector_arg(ev, node, ts) -> Vector:
    value = ev.eval(node, ts)
    if not isinstance(value, Vector):
        raise BadData("expected an instant vector argument")
    return value


def _elementwise(vec: Vector, values: np.ndarray) -> Vector:
    out = Vector([without_name(x) for x in vec.labels], values, vec.present).nonempty()
    return merge_rows(out.labels, out.values, out.present)


def _absent_result(arg, absent_steps: np.ndarray) -> Vector:
    """absent() and absent_over_time(): 1 where nothing is there, labelled with the
    selector's equality matchers (a label matched more than once, or not by equality, is
    left out)."""
    if not absent_steps.any():
        return Vector.empty(len(absent_steps))
    arg = unwrap(arg)
    selector = None
    if isinstance(arg, pp.VectorSelector):
        selector = arg
    elif isinstance(arg, pp.MatrixSelector):
        selector = arg.vector_selector
    labels: Labels = {}
    if selector is not None:
        dropped = set()
        for m in selector.matchers.matchers:
            if m.name == METRIC_NAME:
                continue
            if m.op == pp.MatchOp.Equal and m.name not in labels:
                labels[m.name] = m.value
            else:
                dropped.add(m.name)
        for name in dropped:
            labels.pop(name, None)
    return Vector([labels], np.ones((1, len(absent_steps))), absent_steps[None, :].copy())


def _expand_template(template: str, match) -> str:
    """Go's Regexp.Expand: ``$1``, ``${1}``, ``$name``, ``${name}``, ``$$``; an unknown or
    unmatched group is empty, and ``$1x`` names the group "1x"."""
    out = []
    i = 0
    while i < len(template):
        c = template[i]
        if c != "$" or i + 1 == len(template):
            out.append(c)
            i += 1
            continue
        nxt = template[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
            continue
        if nxt == "{":
            close = template.find("}", i + 2)
            name = template[i + 2 : close] if close != -1 else ""
            if close == -1 or not name or not all(ch.isalnum() or ch == "_" for ch in name):
                out.append(c)
                i += 1
                continue
            i = close + 1
        else:
            j = i + 1
            while j < len(template) and (template[j].isalnum() or template[j] == "_"):
                j += 1
            name = template[i + 1 : j]
            if not name:
                out.append(c)
                i += 1
                continue
            i = j
        out.append(_group(match, name))
    return "".join(out)


def _group(match, name: str) -> str:
    try:
        value = match.group(int(name)) if name.isdigit() else match.group(name)
    except (IndexError, KeyError, ValueError):
        return ""
    return value or ""


def _label_replace(vec: Vector, dst: str, replacement: str, src: str, regex: str) -> Vector:
    try:
        pattern = anchored_regex(regex)
    except re2.error as exc:
        raise ExecutionError(f"invalid regular expression in label_replace(): {regex}") from exc
    if not valid_label_name(dst):
        raise ExecutionError(f"invalid destination label name in label_replace(): {dst}")
    labels = []
    for lab in vec.labels:
        match = pattern.search(lab.get(src, ""))
        if match is None:
            labels.append(lab)
            continue
        value = _expand_template(replacement, match)
        new = {k: v for k, v in lab.items() if k != dst}
        if value:
            new[dst] = value
        labels.append(new)
    return merge_rows(labels, vec.values, vec.present)


def _label_join(vec: Vector, dst: str, sep: str, sources: list[str]) -> Vector:
    if not valid_label_name(dst):
        raise ExecutionError(f"invalid destination label name in label_join(): {dst}")
    for src in sources:
        if not valid_label_name(src):
            raise ExecutionError(f"invalid source label name in label_join(): {src}")
    labels = []
    for lab in vec.labels:
        value = sep.join(lab.get(src, "") for src in sources)
        new = {k: v for k, v in lab.items() if k != dst}
        if value:
            new[dst] = value
        labels.append(new)
    return merge_rows(labels, vec.values, vec.present)


def _histogram_quantile(q: np.ndarray, vec: Vector) -> Vector:
    groups: dict[tuple, list[int]] = {}
    group_labels: dict[tuple, Labels] = {}
    bounds = np.empty(len(vec.labels))
    for i, lab in enumerate(vec.labels):
        try:  # (Python's float() takes "1_0", Go's ParseFloat does not)
            bounds[i] = float(lab.get("le", "x").replace("_", "x"))
        except ValueError:
            continue  # no bucket label, or a malformed one: skipped, as Prometheus does
        rest = {k: v for k, v in lab.items() if k not in ("le", METRIC_NAME)}
        key = tuple(sorted(rest.items()))
        groups.setdefault(key, []).append(i)
        group_labels[key] = rest
    steps = vec.steps
    out_labels, out_values, out_present = [], [], []
    for key, rows in groups.items():
        rows_arr = np.array(rows)
        present = vec.present[rows_arr]
        any_present = present.any(axis=0)
        result = np.full(steps, np.nan)
        # Columns sharing the same set of buckets present are computed together.
        patterns, inverse = np.unique(present.T, axis=0, return_inverse=True)
        for p, pattern in enumerate(patterns):
            if not pattern.any():
                continue
            cols = np.flatnonzero(inverse.ravel() == p)
            sel = rows_arr[pattern]
            result[cols] = _bucket_quantile(q[cols], bounds[sel], vec.values[sel][:, cols])
        out_labels.append(group_labels[key])
        out_values.append(result)
        out_present.append(any_present)
    if not out_labels:
        return Vector.empty(steps)
    return merge_rows(out_labels, np.vstack(out_values), np.vstack(out_present))


def _bucket_quantile(q: np.ndarray, bounds: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Prometheus's bucketQuantile for the columns of ``counts`` (buckets by columns)."""
    order = np.argsort(bounds, kind="stable")
    bounds, counts = bounds[order], counts[order]
    # Buckets with the same upper bound are summed (e.g. "1" and "1.0").
    uniq, inverse = np.unique(bounds, return_inverse=True)
    if len(uniq) != len(bounds):
        merged = np.zeros((len(uniq), counts.shape[1]))
        np.add.at(merged, inverse.ravel(), counts)
        bounds, counts = uniq, merged
    cols = counts.shape[1]
    if not np.isposinf(bounds[-1]) or len(bounds) < 2:
        return np.full(cols, np.nan)
    counts = np.fmax.accumulate(counts, axis=0)  # Prometheus forces the counts monotonic
    observations = counts[-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        rank = q * observations
        reached = counts[:-1] >= rank[None, :]
        b = np.where(reached.any(axis=0), reached.argmax(axis=0), len(bounds) - 1)
        b_prev = np.maximum(b - 1, 0)
        bucket_start = np.where(b > 0, bounds[b_prev], 0.0)
        bucket_end = bounds[np.minimum(b, len(bounds) - 1)]
        col = np.arange(cols)
        count = counts[b, col] - np.where(b > 0, counts[b_prev, col], 0.0)
        rank_in = rank - np.where(b > 0, counts[b_prev, col], 0.0)
        out = bucket_start + (bucket_end - bucket_start) * (rank_in / count)
    out = np.where(b == len(bounds) - 1, bounds[-2], out)
    out = np.where((b == 0) & (bounds[0] <= 0), bounds[0], out)
    out = np.where((observations == 0) | np.isnan(observations), np.nan, out)
    out = np.where(q < 0, -np.inf, out)
    out = np.where(q > 1, np.inf, out)
    return np.where(np.isnan(q), np.nan, out)


def _sorted(vec: Vector, descending: bool, instant: bool) -> Vector:
    if not instant or len(vec.labels) < 2:
        return vec
    values = vec.values[:, 0]
    nan = np.isnan(values)
    key = np.where(nan, 0.0, -values if descending else values)
    order = np.lexsort((key, nan))  # NaN last either way
    return vec.take(order)


def evaluate(ev, node: pp.Call, ts: np.ndarray):
    name = node.func.name
    args = node.args
    steps = len(ts)
    if name in RANGE_FUNCTIONS:
        return _range_function(ev, node, ts)
    if name == "time":
        return Scalar(ts / 1000.0)
    if name == "pi":
        return Scalar(np.full(steps, math.pi))
    if name == "vector":
        values = _scalar_arg(ev, args[0], ts)
        return Vector([{}], values[None, :].copy(), np.ones((1, steps), dtype=bool))
    if name == "scalar":
        vec = _vector_arg(ev, args[0], ts)
        if not vec.labels:
            return Scalar(np.full(steps, np.nan))
        single = vec.present.sum(axis=0) == 1
        picked = np.where(vec.present, vec.values, 0.0).sum(axis=0)
        return Scalar(np.where(single, picked, np.nan))
    if name in _DATE and not args:
        return Vector([{}], _date_part(name, ts / 1000.0)[None, :], np.ones((1, steps), dtype=bool))
    if name == "timestamp":
        inner = unwrap(args[0])
        if isinstance(inner, pp.VectorSelector):
            vec, sample_ts = ev.instant_selector(inner, ts)
            return _elementwise(vec, sample_ts / 1000.0)
        vec = _vector_arg(ev, args[0], ts)
        return _elementwise(vec, np.broadcast_to(ts / 1000.0, vec.values.shape).copy())
    if name == "absent":
        vec = _vector_arg(ev, args[0], ts)
        return _absent_result(args[0], ~vec.present.any(axis=0))
    if name == "label_replace":
        vec = _vector_arg(ev, args[0], ts)
        dst, repl, src, regex = (_string_arg(a) for a in args[1:5])
        return _label_replace(vec, dst, repl, src, regex)
    if name == "label_join":
        vec = _vector_arg(ev, args[0], ts)
        strings = [_string_arg(a) for a in args[1:]]
        return _label_join(vec, strings[0], strings[1], strings[2:])
    if name == "histogram_quantile":
        q = _scalar_arg(ev, args[0], ts)
        return _histogram_quantile(q, _vector_arg(ev, args[1], ts))
    if name in ("sort", "sort_desc"):
        vec = _vector_arg(ev, args[0], ts)
        return _sorted(vec, name == "sort_desc", steps == 1 and ev.instant)
    if name in ("clamp", "clamp_min", "clamp_max"):
        vec = _vector_arg(ev, args[0], ts)
        bounds = [_scalar_arg(ev, a, ts) for a in args[1:]]
        with np.errstate(invalid="ignore"):
            if name == "clamp":
                lo, hi = bounds
                values = np.maximum(lo, np.minimum(hi, vec.values))
                out = _elementwise(vec, values)
                keep = (hi >= lo) | np.isnan(lo) | np.isnan(hi)
                return Vector(out.labels, out.values, out.present & keep).nonempty()
            if name == "clamp_min":
                return _elementwise(vec, np.maximum(vec.values, bounds[0]))
            return _elementwise(vec, np.minimum(vec.values, bounds[0]))
    if name == "round":
        vec = _vector_arg(ev, args[0], ts)
        to_nearest = _scalar_arg(ev, args[1], ts) if len(args) > 1 else np.ones(steps)
        with np.errstate(all="ignore"):
            inverse = 1.0 / to_nearest
            return _elementwise(vec, np.floor(vec.values * inverse + 0.5) / inverse)
    if name in _DATE:
        vec = _vector_arg(ev, args[0], ts)
        return _elementwise(vec, _date_part(name, vec.values))
    if name in _MATH:
        vec = _vector_arg(ev, args[0], ts)
        with np.errstate(all="ignore"):
            return _elementwise(vec, _MATH[name](vec.values))
    raise BadData(f'unknown function with name "{name}"')
