"""Rule-file validation agrees with Prometheus's own: ``promtool check rules`` (Debian's
2.42) accepts exactly the files Canopy accepts. Also the pure parts: durations, templates."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from backend.rules.durations import DurationError, duration_format, duration_parse
from backend.rules.rulefile import RuleFileError, group_parse, groups_parse
from backend.rules.templates import TemplateError, template_expand, template_parse

VALID = {
    "istio": """
groups:
- name: istio.rules
  interval: 30s
  rules:
  - record: destination_service:istio_requests:rate5m
    expr: sum by (destination_service) (rate(istio_requests_total[5m]))
  - alert: IstioHigh5xxRate
    expr: |
      sum by (destination_service) (rate(istio_requests_total{response_code=~"5.."}[5m]))
        / sum by (destination_service) (rate(istio_requests_total[5m])) > 0.05
    for: 5m
    labels:
      severity: page
    annotations:
      summary: "High 5xx rate on {{ $labels.destination_service }}"
      description: "{{ $value | humanizePercentage }} of requests fail"
  - alert: IstioLatencyP99
    expr: >-
      histogram_quantile(0.99, sum by (le, destination_service)
        (rate(istio_request_duration_milliseconds_bucket[5m]))) > 1000
    for: 10m
    keep_firing_for: 5m
    annotations:
      summary: >-
        {{ with $labels.destination_service }}{{ . }}{{ else }}unknown{{ end }}
        p99 {{ humanizeDuration $value }}
""",
    "empty_groups": "groups: []\n",
    "templates": """
groups:
- name: t
  rules:
  - alert: A
    expr: up == 0
    labels:
      team: '{{ $labels.job | toUpper }}'
    annotations:
      a: '{{ range $k, $v := $labels }}{{ $k }}={{ $v }} {{ end }}'
      b: '{{ printf "%.2f" $value }} {{ humanize1024 $value }} {{ .ExternalURL }}'
      c: '{{ if and (gt $value 1.0) (lt $value 5.0) }}mid{{ else if gt $value 5.0 }}hi{{ end }}'
      d: '{{ reReplaceAll "(.*):.*" "$1" $labels.instance }} {{ title "abc" }}'
      f: '{{ stripPort "a:1" }} {{ stripDomain "a.b.c:1" }} {{ humanizeTimestamp 0 }}'
      e: '{{ with query "up" }}{{ . | first | value }}{{ end }} {{ graphLink "up" }}'
""",
    "zero_for": """
groups:
- name: z
  interval: 1m
  rules:
  - alert: Z
    expr: vector(1)
    for: 0s
""",
}

INVALID = {
    "bad_expr": "groups:\n- name: g\n  rules:\n  - record: r\n    expr: sum(\n",
    "no_name": "groups:\n- rules:\n  - record: r\n    expr: up\n",
    "duplicate_group": (
        "groups:\n- name: g\n  rules: [{record: r, expr: up}]\n"
        "- name: g\n  rules: [{record: s, expr: up}]\n"
    ),
    "both_kinds": "groups:\n- name: g\n  rules:\n  - record: r\n    alert: A\n    expr: up\n",
    "neither_kind": "groups:\n- name: g\n  rules:\n  - expr: up\n",
    "no_expr": "groups:\n- name: g\n  rules:\n  - record: r\n",
    "bad_for": "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    for: 5 minutes\n",
    "bad_interval": "groups:\n- name: g\n  interval: 1x\n  rules:\n  - record: r\n    expr: up\n",
    "record_with_for": "groups:\n- name: g\n  rules:\n  - record: r\n    expr: up\n    for: 1m\n",
    "record_annotations": (
        "groups:\n- name: g\n  rules:\n  - record: r\n    expr: up\n    annotations: {a: b}\n"
    ),
    "bad_record_name": "groups:\n- name: g\n  rules:\n  - record: 'not a name'\n    expr: up\n",
    "bad_label_name": (
        "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    labels: {'1bad': x}\n"
    ),
    "name_label": (
        "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    labels: {__name__: x}\n"
    ),
    "unknown_field": "groups:\n- name: g\n  rulez: []\n",
    "unknown_rule_field": "groups:\n- name: g\n  rules:\n  - record: r\n    expr: up\n    fo: 1\n",
    "template_unknown_function": (
        "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n"
        "    annotations: {s: '{{ nosuchfunc $value }}'}\n"
    ),
    "template_unclosed": (
        "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n"
        "    annotations: {s: '{{ if $value }}yes'}\n"
    ),
    "template_undefined_variable": (
        "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    labels: {s: '{{ $nope }}'}\n"
    ),
    "not_yaml": "groups: [\n",
}


def _promtool() -> str:
    path = shutil.which("promtool")
    if not path:
        if os.environ.get("CI"):
            pytest.fail("promtool is not installed: .ci/run installs Debian's prometheus")
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    return path


def _promtool_accepts(tmp_path, name: str, text: str) -> tuple[bool, str]:
    path = tmp_path / f"{name}.yml"
    path.write_text(text)
    done = subprocess.run(
        [_promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    return done.returncode == 0, done.stdout + done.stderr


def _canopy_accepts(text: str) -> tuple[bool, str]:
    try:
        groups_parse(text)
    except RuleFileError as exc:
        return False, str(exc)
    return True, ""


@pytest.mark.parametrize("name", sorted(VALID) + sorted(INVALID))
def test_upload_validation_agrees_with_promtool(tmp_path, name):
    text = VALID.get(name) or INVALID[name]
    promtool_ok, promtool_said = _promtool_accepts(tmp_path, name, text)
    canopy_ok, canopy_said = _canopy_accepts(text)
    assert promtool_ok == (name in VALID), promtool_said
    assert canopy_ok == promtool_ok, f"promtool: {promtool_said}\ncanopy: {canopy_said}"
    if not canopy_ok:
        assert canopy_said  # a reason to show the user


def test_group_round_trips_through_yaml():
    (group,) = groups_parse(VALID["istio"])
    assert group.interval_ms == 30_000
    again = group_parse(group.as_yaml())
    assert again == group
    assert [r.kind for r in group.rules] == ["recording", "alerting", "alerting"]
    assert group.rules[2].keep_firing_for_ms == 300_000


def test_every_reason_is_reported():
    text = (
        "groups:\n- name: g\n  rules:\n  - record: r\n    expr: sum(\n"
        "  - alert: A\n    expr: up\n    for: soon\n"
    )
    with pytest.raises(RuleFileError) as info:
        groups_parse(text)
    assert len(info.value.errors) == 2
    assert "rule 1" in info.value.errors[0] and "parse" in info.value.errors[0]
    assert "rule 2" in info.value.errors[1] and "soon" in info.value.errors[1]


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("0", 0),
        ("1s", 1000),
        ("1m30s", 90_000),
        ("1h", 3_600_000),
        ("2d", 172_800_000),
        ("100ms", 100),
        ("1w", 604_800_000),
    ],
)
def test_durations(text, ms):
    assert duration_parse(text) == ms
    if ms:
        assert duration_parse(duration_format(ms)) == ms


@pytest.mark.parametrize("text", ["", "1", "1.5m", "m", "-1s", "1s1m"])
def test_bad_durations(text):
    with pytest.raises(DurationError):
        duration_parse(text)


# Expected outputs are those of Prometheus's template tests (template/template_test.go) and
# Go's fmt for the same inputs.
@pytest.mark.parametrize(
    ("text", "value", "expected"),
    [
        ("{{ $value }}", 1234.5678, "1234.5678"),
        ("{{ $value }}", 1e21, "1e+21"),
        ("{{ $value }}", 0.00001, "1e-05"),
        ("{{ humanize $value }}", 1234567.0, "1.235M"),
        ("{{ humanize $value }}", 0.0012345, "1.234m"),
        ("{{ humanize $value }}", 0.0, "0"),
        ("{{ humanize1024 $value }}", 1048576.0, "1Mi"),
        ("{{ humanize1024 $value }}", 0.5, "0.5"),
        ("{{ humanizeDuration $value }}", 0.0, "0s"),
        ("{{ humanizeDuration $value }}", 90061.0, "1d 1h 1m 1s"),
        ("{{ humanizeDuration $value }}", 65.0, "1m 5s"),
        ("{{ humanizeDuration $value }}", 1.5, "1.5s"),
        ("{{ humanizeDuration $value }}", 0.0012, "1.2ms"),
        ("{{ humanizePercentage $value }}", 0.1234567, "12.35%"),
        ("{{ humanizeTimestamp $value }}", 1435065584.128, "2015-06-23 13:19:44.128 +0000 UTC"),
        ("{{ $labels.instance }}", 1.0, "a:9090"),
        ("{{ .Labels.job | toUpper }}", 1.0, "API"),
        ("{{ $labels.missing }}", 1.0, "<no value>"),
        ("{{ if gt $value 2.0 }}hi{{ else }}lo{{ end }}", 3.0, "hi"),
        (
            "{{- range $k, $v := $labels }}{{ $k }}={{ $v }},{{ end }}",
            1.0,
            "instance=a:9090,job=api,",
        ),
        ('{{ printf "%.1f|%s|%d" $value "x" 3 }}', 2.25, "2.2|x|3"),
        ('{{ reReplaceAll "(.*):.*" "$1" $labels.instance }}', 1.0, "a"),
        ('{{ match "^a" $labels.instance }}', 1.0, "true"),
        ("{{ stripPort $labels.instance }}", 1.0, "a"),
        ('{{ title "hello world" }}', 1.0, "Hello World"),
        ('{{ parseDuration "1m30s" }}', 1.0, "90"),
        ('{{ $x := "v" }}{{ $x }}', 1.0, "v"),
        ('{{ graphLink "up" }}{{ tableLink "up" }}', 1.0, ""),
        ("{{ humanize $value }}", float("inf"), "+Inf"),
    ],
)
def test_templates_render_like_prometheus(text, value, expected):
    got = template_expand(
        text=text, name="t", labels={"instance": "a:9090", "job": "api"}, value=value
    )
    assert got == expected


def test_template_execution_error_reads_like_prometheus():
    got = template_expand(text='{{ humanize "x" }}', name="__alert_A", labels={}, value=1.0)
    assert got.startswith("<error expanding template: error executing template __alert_A:")


@pytest.mark.parametrize("text", ["{{ foo }}", "{{ $x }}", "{{ if 1 }}", "{{ end }}", "{{"])
def test_template_parse_errors(text):
    with pytest.raises(TemplateError):
        template_parse(text)
