"""Binary operators: arithmetic, comparisons (filtering or ``bool``) and the set operators,
between scalars and vectors, with Prometheus's vector matching (``on``/``ignoring``,
``group_left``/``group_right``) checked step by step as Prometheus does."""

from __future__ import annotations

import numpy as np
import promql_parser as pp

from backend.metrics.labels import METRIC_NAME, Labels, labels_key
from backend.metrics.promql.errors import BadData, ExecutionError
from backend.metrics.promql.values import (
    Scalar,
    Vector,
    labels_text,
    merge_rows,
    without_name,
)

ARITHMETIC = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": np.divide,
    "%": np.fmod,  # Go's math.Mod: the result takes the dividend's sign
    "^": np.power,
    "atan2": np.arctan2,
}
COMPARISON = {
    "==": np.equal,
    "!=": np.not_equal,
    ">": np.greater,
    "<": np.less,
    ">=": np.greater_equal,
    "<=": np.less_equal,
}
SET_OPERATORS = frozenset({"and", "or", "unless"})
# Prometheus 2.x drops the metric name for these, but not for atan2.
DROPS_NAME = frozenset({"+", "-", "*", "/", "%", "^"})
Card = pp.VectorMatchCardinality


def evaluate(ev, node: pp.BinaryExpr, ts: np.ndarray):
    op = str(node.op)
    lhs = ev.eval(node.lhs, ts)
    rhs = ev.eval(node.rhs, ts)
    mod = node.modifier
    return_bool = bool(mod and mod.return_bool)
    if isinstance(lhs, Scalar) and isinstance(rhs, Scalar):
        with np.errstate(all="ignore"):
            if op in COMPARISON:
                return Scalar(COMPARISON[op](lhs.values, rhs.values).astype(np.float64))
            return Scalar(ARITHMETIC[op](lhs.values, rhs.values))
    if isinstance(lhs, Vector) and isinstance(rhs, Scalar):
        return _vector_scalar(op, lhs, rhs.values, swapped=False, return_bool=return_bool)
    if isinstance(lhs, Scalar) and isinstance(rhs, Vector):
        return _vector_scalar(op, rhs, lhs.values, swapped=True, return_bool=return_bool)
    if not (isinstance(lhs, Vector) and isinstance(rhs, Vector)):
        raise BadData("binary expression must contain only scalar and instant vector types")
    lhs, rhs = lhs.nonempty(), rhs.nonempty()
    signature = _signature_function(mod)
    if op in SET_OPERATORS:
        return _set_operation(op, lhs, rhs, signature)
    return _vector_vector(op, lhs, rhs, mod, signature, return_bool)


def _vector_scalar(op: str, vec: Vector, scalar: np.ndarray, *, swapped: bool, return_bool: bool):
    left, right = vec.values, scalar[None, :]
    if swapped:
        left, right = right, left
    with np.errstate(all="ignore"):
        if op in ARITHMETIC:
            values, present = ARITHMETIC[op](left, right), vec.present
            drop_name = op in DROPS_NAME
        else:
            hit = COMPARISON[op](left, right)
            if return_bool:
                values, present, drop_name = hit.astype(np.float64), vec.present, True
            else:
                # The vector's own value is kept, whichever side it was on.
                values, present, drop_name = vec.values, vec.present & hit, False
    values = np.broadcast_to(values, vec.values.shape)
    labels = [without_name(x) for x in vec.labels] if drop_name else vec.labels
    out = Vector(labels, np.array(values), present).nonempty()
    return merge_rows(out.labels, out.values, out.present) if drop_name else out


def _signature_function(mod):
    matching = mod.matching if mod is not None else None
    if matching is not None and matching.type == pp.LabelModifierType.Include:
        names = sorted(set(matching.labels))

        def on(labels: Labels) -> tuple:
            return tuple((k, labels[k]) for k in names if k in labels)

        return on
    ignored = set(matching.labels if matching is not None else ()) | {METRIC_NAME}

    def ignoring(labels: Labels) -> tuple:
        return tuple(sorted((k, v) for k, v in labels.items() if k not in ignored))

    return ignoring


def _presence_by_signature(vec: Vector, sigs: list[tuple], index: dict[tuple, int]) -> np.ndarray:
    out = np.zeros((len(index) + 1, vec.steps), dtype=bool)  # the last row: "no such sig"
    for sig, present in zip(sigs, vec.present, strict=True):
        out[index[sig]] |= present
    return out


def _set_operation(op: str, lhs: Vector, rhs: Vector, signature) -> Vector:
    lsigs = [signature(x) for x in lhs.labels]
    rsigs = [signature(x) for x in rhs.labels]
    index = {sig: i for i, sig in enumerate(dict.fromkeys([*lsigs, *rsigs]))}
    if op == "or":
        covered = _presence_by_signature(lhs, lsigs, index)
        rows = [index[s] for s in rsigs]
        right_present = rhs.present & ~covered[rows] if rows else rhs.present
        out = merge_rows(
            lhs.labels + rhs.labels,
            np.vstack([lhs.values, rhs.values]),
            np.vstack([lhs.present, right_present]),
        )
        return out.nonempty()
    covered = _presence_by_signature(rhs, rsigs, index)
    rows = [index[s] for s in lsigs]
    if not rows:
        return lhs
    hit = covered[rows]
    present = lhs.present & (hit if op == "and" else ~hit)
    return Vector(lhs.labels, lhs.values, present).nonempty()


def _result_labels(many: Labels, one: Labels, op: str, mod, return_bool: bool) -> Labels:
    out = dict(many)
    if op in DROPS_NAME or return_bool:
        out.pop(METRIC_NAME, None)
    card = mod.card if mod is not None else Card.OneToOne
    matching = mod.matching if mod is not None else None
    if card == Card.OneToOne and matching is not None:
        names = set(matching.labels)
        if matching.type == pp.LabelModifierType.Include:
            out = {k: v for k, v in out.items() if k in names}
        else:
            out = {k: v for k, v in out.items() if k not in names}
    for name in (mod.group_labels or []) if mod is not None else []:
        if one.get(name):
            out[name] = one[name]
        else:
            out.pop(name, None)
    return out


def _vector_vector(op, lhs: Vector, rhs: Vector, mod, signature, return_bool: bool) -> Vector:
    steps = lhs.steps
    if not lhs.labels or not rhs.labels:
        return Vector.empty(steps)
    card = mod.card if mod is not None else Card.OneToOne
    swapped = card == Card.OneToMany
    many, one = (rhs, lhs) if swapped else (lhs, rhs)
    many_sigs = [signature(x) for x in many.labels]
    one_rows: dict[tuple, list[int]] = {}
    for j, lab in enumerate(one.labels):
        one_rows.setdefault(signature(lab), []).append(j)
    # Prometheus skips a step where either side is empty, so it only sees duplicates
    # on the "one" side at steps where both sides hold something.
    both = many.present.any(axis=0) & one.present.any(axis=0)
    for sig, rows in one_rows.items():
        if len(rows) > 1:
            clash = (one.present[rows].sum(axis=0) > 1) & both
            if clash.any():
                col = int(np.argmax(clash))
                a, b = [one.labels[r] for r in rows if one.present[r, col]][:2]
                side = "left" if swapped else "right"
                raise ExecutionError(
                    f"found duplicate series for the match group {labels_text(dict(sig))} "
                    f"on the {side} hand-side of the operation: "
                    f"[{labels_text(a)}, {labels_text(b)}];many-to-many matching not allowed: "
                    "matching labels must be unique on one side"
                )
    arithmetic = ARITHMETIC.get(op)
    compare = COMPARISON.get(op)
    outputs: dict[tuple, list] = {}  # labels key -> [labels, values, present, signature]
    matched: dict[tuple, np.ndarray] = {}
    with np.errstate(all="ignore"):
        for i, sig in enumerate(many_sigs):
            for j in one_rows.get(sig, ()):
                both_present = many.present[i] & one.present[j]
                if not both_present.any():
                    continue
                left, right = many.values[i], one.values[j]
                if swapped:
                    left, right = right, left
                if arithmetic is not None:
                    values, keep = arithmetic(left, right), both_present
                elif return_bool:
                    values, keep = compare(left, right).astype(np.float64), both_present
                else:
                    values, keep = left, both_present & compare(left, right)
                if not keep.any():
                    continue
                if card == Card.OneToOne:
                    count = matched.setdefault(sig, np.zeros(steps, dtype=np.int64))
                    count += keep
                    if (count > 1).any():
                        raise ExecutionError(
                            "multiple matches for labels: many-to-one matching must be "
                            "explicit (group_left/group_right)"
                        )
                labels = _result_labels(many.labels[i], one.labels[j], op, mod, return_bool)
                key = labels_key(labels)
                existing = outputs.get(key)
                if existing is None:
                    outputs[key] = [labels, np.where(keep, values, 0.0), keep.copy(), sig]
                    continue
                if (existing[2] & keep).any():
                    if existing[3] == sig and card != Card.OneToOne:
                        raise ExecutionError(
                            "multiple matches for labels: grouping labels must ensure "
                            "unique matches"
                        )
                    raise ExecutionError("vector cannot contain metrics with the same labelset")
                existing[1] = np.where(keep, values, existing[1])
                existing[2] |= keep
    if not outputs:
        return Vector.empty(steps)
    rows = list(outputs.values())
    return Vector(
        [r[0] for r in rows], np.vstack([r[1] for r in rows]), np.vstack([r[2] for r in rows])
    )
