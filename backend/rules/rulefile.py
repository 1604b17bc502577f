"""Prometheus rule files: parsing and validating rule-group YAML as Prometheus's ``rulefmt``
does (what ``promtool check rules`` and the Cortex/Mimir ruler accept), into plain data.

Pure functions: no database. ``groups_parse`` takes a whole rule file (``groups: [...]``),
``group_parse`` one group (the body of the ruler API's ``POST /config/v1/rules/{namespace}``).
Every error names the group and rule it is in; all of a file's errors are reported at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from backend.metrics.promql import BadData
from backend.metrics.promql.parse import parse_expr
from backend.metrics.promql.values import valid_label_name
from backend.rules.durations import DurationError, duration_format, duration_parse
from backend.rules.templates import TemplateError, template_parse

DEFAULT_INTERVAL_MS = 60_000
MAX_FILE_BYTES = 1024 * 1024  # one upload
MAX_RULES_PER_GROUP = 200
MAX_EXPR_BYTES = 64 * 1024
_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_GROUP_FIELDS = ("name", "interval", "limit", "rules", "source_tenants")
_RULE_FIELDS = ("record", "alert", "expr", "for", "keep_firing_for", "labels", "annotations")


class RuleFileError(ValueError):
    """The file is not a valid rule file; ``errors`` lists every reason."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class Rule:
    expr: str
    record: str = ""
    alert: str = ""
    for_ms: int = 0
    keep_firing_for_ms: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return "alerting" if self.alert else "recording"

    @property
    def name(self) -> str:
        return self.alert or self.record

    def as_dict(self) -> dict[str, Any]:
        """The rule as Prometheus writes it back (``rulefmt``'s field order, defaults left out)."""
        out: dict[str, Any] = {"alert": self.alert} if self.alert else {"record": self.record}
        out["expr"] = self.expr
        if self.for_ms:
            out["for"] = duration_format(self.for_ms)
        if self.keep_firing_for_ms:
            out["keep_firing_for"] = duration_format(self.keep_firing_for_ms)
        if self.labels:
            out["labels"] = dict(self.labels)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Rule:
        return cls(
            expr=data["expr"],
            record=data.get("record", ""),
            alert=data.get("alert", ""),
            for_ms=duration_parse(data["for"]) if data.get("for") else 0,
            keep_firing_for_ms=(
                duration_parse(data["keep_firing_for"]) if data.get("keep_firing_for") else 0
            ),
            labels=dict(data.get("labels") or {}),
            annotations=dict(data.get("annotations") or {}),
        )


@dataclass(frozen=True)
class Group:
    name: str
    interval_ms: int | None  # None: the default (or the org's minimum)
    limit: int
    rules: tuple[Rule, ...]

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.interval_ms is not None:
            out["interval"] = duration_format(self.interval_ms)
        if self.limit:
            out["limit"] = self.limit
        out["rules"] = [r.as_dict() for r in self.rules]
        return out

    def as_yaml(self) -> str:
        return yaml_dump(self.as_dict())


def yaml_dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)


def _load(text: str) -> Any:
    if len(text.encode()) > MAX_FILE_BYTES:
        raise RuleFileError([f"rule file larger than {MAX_FILE_BYTES} bytes"])
    try:
        # Every scalar as a string, as Go's yaml decodes into Prometheus's string fields.
        return yaml.load(text, Loader=yaml.BaseLoader)  # noqa: S506 - BaseLoader builds no objects
    except yaml.YAMLError as exc:
        raise RuleFileError([f"yaml: {exc}".replace("\n", " ")]) from None
    except RecursionError:
        raise RuleFileError(["yaml: nested too deeply"]) from None


def groups_parse(text: str) -> list[Group]:
    """A whole rule file: ``groups: [<group>, ...]``."""
    data = _load(text)
    if data in (None, ""):
        return []
    if not isinstance(data, dict):
        raise RuleFileError(["yaml: the rule file must be a mapping with a 'groups' list"])
    unknown = [k for k in data if k != "groups"]
    if unknown:
        raise RuleFileError([f"field {k} not found in type rulefmt.RuleGroups" for k in unknown])
    raw = data.get("groups") or []
    if not isinstance(raw, list):
        raise RuleFileError(["groups: must be a list of rule groups"])
    errors: list[str] = []
    groups: list[Group] = []
    seen: set[str] = set()
    for item in raw:
        try:
            group = _group(item)
        except RuleFileError as exc:
            errors.extend(exc.errors)
            continue
        if group.name in seen:
            errors.append(f'{group.name}: groupname: "{group.name}" is repeated in the same file')
        seen.add(group.name)
        groups.append(group)
    if errors:
        raise RuleFileError(errors)
    return groups


def group_parse(text: str) -> Group:
    """One rule group (what ``mimirtool``/``cortextool`` POST to the ruler API)."""
    return _group(_load(text))


def _group(data: Any) -> Group:
    if not isinstance(data, dict):
        raise RuleFileError(["a rule group must be a mapping"])
    errors = [
        f"field {k} not found in type rulefmt.RuleGroup" for k in data if k not in _GROUP_FIELDS
    ]
    name = data.get("name") or ""
    if not isinstance(name, str) or not name:
        errors.append("Groupname must not be empty")
        name = ""
    where = name or "(unnamed group)"
    interval_ms = None
    if data.get("interval") not in (None, ""):
        try:
            interval_ms = duration_parse(_scalar(data["interval"]))
        except (DurationError, TypeError) as exc:
            errors.append(f"{where}: interval: {exc}")
        else:
            if interval_ms == 0:
                interval_ms = None  # Prometheus: a zero interval is the global default
    limit = 0
    if data.get("limit") not in (None, ""):
        try:
            limit = int(_scalar(data["limit"]))
            if limit < 0:
                raise ValueError
        except (ValueError, TypeError):
            errors.append(f"{where}: limit: must be a non-negative integer")
    raw_rules = data.get("rules") or []
    if not isinstance(raw_rules, list):
        errors.append(f"{where}: rules: must be a list")
        raw_rules = []
    if len(raw_rules) > MAX_RULES_PER_GROUP:
        errors.append(f"{where}: more than {MAX_RULES_PER_GROUP} rules in one group")
        raw_rules = []
    rules = []
    for i, item in enumerate(raw_rules):
        try:
            rules.append(_rule(item))
        except RuleFileError as exc:
            errors.extend(f"{where}: rule {i + 1}: {e}" for e in exc.errors)
    if errors:
        raise RuleFileError(errors)
    return Group(name=name, interval_ms=interval_ms, limit=limit, rules=tuple(rules))


def _scalar(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a scalar value")
    return value


def _string_map(value: Any, what: str, errors: list[str]) -> dict[str, str]:
    if value in (None, ""):
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        errors.append(f"{what}: must be a mapping of strings")
        return {}
    return dict(value)


def _rule(data: Any) -> Rule:
    if not isinstance(data, dict):
        raise RuleFileError(["a rule must be a mapping"])
    errors = [
        f"field {k} not found in type rulefmt.RuleNode" for k in data if k not in _RULE_FIELDS
    ]
    fields = {}
    for key in ("record", "alert", "expr", "for", "keep_firing_for"):
        value = data.get(key)
        if value is not None and not isinstance(value, str):
            errors.append(f"{key}: must be a string")
            value = None
        fields[key] = value or ""
    record, alert, expr = fields["record"], fields["alert"], fields["expr"]
    labels = _string_map(data.get("labels"), "labels", errors)
    annotations = _string_map(data.get("annotations"), "annotations", errors)
    if record and alert:
        errors.append("only one of 'record' and 'alert' must be set")
    if not record and not alert:
        errors.append("one of 'record' or 'alert' must be set")
    if not expr:
        errors.append("field 'expr' must be set in rule")
    elif len(expr.encode()) > MAX_EXPR_BYTES:
        errors.append(f"expr longer than {MAX_EXPR_BYTES} bytes")
    else:
        try:
            parse_expr(expr)
        except BadData as exc:
            errors.append(f"could not parse expression: {exc}")
    durations = {}
    for key in ("for", "keep_firing_for"):
        durations[key] = 0
        if fields[key]:
            try:
                durations[key] = duration_parse(fields[key])
            except DurationError as exc:
                errors.append(f"{key}: {exc}")
    if record:
        if annotations:
            errors.append("invalid field 'annotations' in recording rule")
        if durations["for"]:
            errors.append("invalid field 'for' in recording rule")
        if durations["keep_firing_for"]:
            errors.append("invalid field 'keep_firing_for' in recording rule")
        if not _METRIC_NAME.match(record):
            errors.append(f"invalid recording rule name: {record}")
    for name in labels:
        if not valid_label_name(name) or name == "__name__":
            errors.append(f"invalid label name: {name}")
    for name in annotations:
        if not valid_label_name(name):
            errors.append(f"invalid annotation name: {name}")
    if alert:
        for kind, mapping in (("label", labels), ("annotation", annotations)):
            for name, text in mapping.items():
                try:
                    template_parse(text, name=f"__alert_{alert}")
                except TemplateError as exc:
                    errors.append(f"{kind} {name!r}: template: __alert_{alert}: {exc}")
    if errors:
        raise RuleFileError(errors)
    return Rule(
        expr=expr,
        record=record,
        alert=alert,
        for_ms=durations["for"],
        keep_firing_for_ms=durations["keep_firing_for"],
        labels=labels,
        annotations=annotations,
    )
