"""PromQL expressions for the compatibility suite (see ``test_promql_compat.py``).

``VALID`` covers PromQL as Prometheus 2.42 evaluates it, over the series of
``promql_dataset.py``; ``$AT`` stands for a fixed timestamp inside the dataset (use
:func:`render`). ``PARSE_ERRORS`` must be refused with 400 ``bad_data``, ``EXECUTION_ERRORS``
parse but fail while evaluating, with 422 ``execution``.

Label values used here exist in the dataset, so nearly every expression returns data; the few
that are empty on purpose (``absent(up)``, a ``rate`` over a single sample, ...) say so.
"""

from __future__ import annotations

import re

from tests.compat.promql_dataset import Timeline

# The Istio dashboards' template variables, set to values of the dataset.
_SVC = "productpage.bookinfo.svc.cluster.local"
_REVIEWS_SVC = "reviews.bookinfo.svc.cluster.local"
_KIALI_GRAPH_BY = (
    "source_cluster,source_workload_namespace,source_workload,source_canonical_service,"
    "source_canonical_revision,destination_cluster,destination_service_namespace,"
    "destination_service,destination_service_name,destination_workload_namespace,"
    "destination_workload,destination_canonical_service,destination_canonical_revision,"
    "request_protocol,response_code,grpc_response_status,response_flags"
)

SELECTORS = [
    "istio_requests_total",
    'istio_requests_total{reporter="destination"}',
    'istio_requests_total{reporter!="source"}',
    'istio_requests_total{response_code=~"5.."}',
    'istio_requests_total{response_code!~"2.*"}',
    'istio_requests_total{destination_workload=~"reviews-v1|reviews-v2|ratings-v1"}',
    'istio_requests_total{source_workload=~".*", destination_service_namespace="shop"}',
    'istio_requests_total{destination_service=~"reviews\\\\..*", response_code!="200"}',
    'istio_requests_total{grpc_response_status=""}',  # the label is absent everywhere
    'istio_requests_total{grpc_response_status!=""}',  # ... so: empty
    'up{zone=~"|eu-.*"}',  # a regex matching the empty string matches the absent label
    'up{job=~"node|cache", instance!~""}',
    'up{instance=~"10\\\\.0\\\\.1\\\\..*"}',
    '{__name__=~"istio_tcp_.*_total", reporter="source"}',
    '{__name__="temperature_celsius", sensor=~"(?i)CPU.*"}',
    'node_memory_free_bytes{instance=~"node-(a|c):9100"}',
    "temperature_celsius",
    "cache_hit_ratio",
    "deployment_replicas",  # one sample: visible for 5 minutes only
    'up{job="node"}[1m]',  # a range vector: a matrix from an instant query
    'temperature_celsius{sensor="ambient"}[3m]',  # stale markers are not returned
    'istio_requests_total{reporter="source", response_code="503"}[2m]',
    'count({__name__=~".+"})',
    'count by (__name__) ({__name__=~"istio_.*"})',
]

MODIFIERS = [
    'istio_requests_total{reporter="source", response_code="404"} offset 5m',
    'rate(istio_requests_total{reporter="destination"}[5m] offset 10m)',
    "sum(rate(istio_requests_total[5m] offset 30m))",
    'up{job="node"} offset -5m',
    'istio_requests_total{reporter="destination", response_code="200"} @ $AT',
    'rate(istio_requests_total{reporter="destination"}[5m] @ $AT)',
    "node_memory_free_bytes @ $AT offset 5m",
    "sum(rate(istio_requests_total[5m] @ end()))",
    "sum by (reporter) (rate(istio_requests_total[5m] @ start()))",
    "up @ start()",
    'timestamp(temperature_celsius{sensor="cpu0"} @ end())',
    "timestamp(up @ $AT)",
    "temperature_celsius @ $AT - temperature_celsius",
]

SUBQUERIES = [
    'max_over_time(rate(istio_requests_total{reporter="source"}[1m])[10m:30s])',
    'max_over_time(rate(istio_requests_total{reporter="source"}[1m])[10m:30s] offset 5m)',
    'max_over_time(rate(istio_requests_total{reporter="source"}[1m])[10m:30s] @ end())',
    "avg_over_time(sum by (destination_workload) (rate(istio_requests_total[1m]))[15m:1m])",
    "min_over_time(node_memory_free_bytes[10m:])",  # default step: the evaluation interval
    'rate(sum(istio_requests_total{reporter="destination"})[5m:30s])',
    "deriv(node_memory_free_bytes[10m:1m])",
    "max_over_time(avg_over_time(up[5m:1m])[20m:5m])",
    'sum_over_time(istio_requests_total{response_code="404"}[5m:1m] offset 2m)',
    "quantile_over_time(0.5, temperature_celsius[10m:45s])",
    "count_over_time((up == 1)[15m:1m])",
]

AGGREGATIONS = [
    "sum(istio_requests_total)",
    "sum by (reporter) (rate(istio_requests_total[5m]))",
    "sum without (instance, job) (rate(istio_requests_total[5m]))",
    "avg by (destination_workload) (rate(istio_requests_total[5m]))",
    "min by (job) (up)",
    "max without (sensor) (temperature_celsius)",
    "min(temperature_celsius)",
    "max(temperature_celsius)",
    "avg(temperature_celsius)",
    "sum(temperature_celsius)",
    "count by (destination_service) (istio_requests_total)",
    "count(istio_requests_total) by (response_code)",
    "group by (source_workload, destination_workload) (istio_requests_total)",
    "group(istio_requests_total)",
    "stddev by (location) (temperature_celsius)",
    "stddev(cache_hit_ratio)",
    "stdvar(node_memory_free_bytes)",
    "stdvar by (job) (up)",
    # (no ties at the k-th place anywhere in the suite: the chosen series may then differ)
    'topk(3, rate(istio_request_duration_milliseconds_sum{reporter="destination"}[5m]))',
    "topk by (destination_workload) (1, rate(istio_request_duration_milliseconds_sum[5m]))",
    'topk(2, {__name__=~"istio_tcp_(sent|received)_bytes_total"})',
    "bottomk(2, node_memory_free_bytes)",
    "bottomk by (reporter) (2, sum by (reporter, destination_workload) "
    "(rate(istio_request_duration_milliseconds_sum[5m])))",
    "quantile(0.9, rate(istio_requests_total[5m]))",
    "quantile by (reporter) (0.25, rate(istio_requests_total[5m]))",
    "quantile(2, node_memory_free_bytes)",  # outside [0, 1]: +Inf
    "quantile(-1, node_memory_free_bytes)",  # -Inf
    'count_values("version", istio_build)',
    'count_values by (job) ("value", up)',
    'count_values("temp", round(temperature_celsius))',  # NaN and +Inf as label values
    "sum(up) by (job)",
    "sum by () (up)",
    "avg without (instance) (up)",
    'sum by (__name__) ({__name__=~"istio_tcp_.*"})',
    'max by (le) (istio_request_duration_milliseconds_bucket{reporter="destination"})',
]

BINARY_OPERATORS = [
    # scalar-scalar, precedence and associativity
    "1 + 2 * 3 - 4 / 2",
    "(1 + 2) * 3",
    "2 ^ 3 ^ 2",  # right-associative: 512
    "-2 ^ 2",  # unary minus binds looser than ^: -4
    "10 % 3 + 2 ^ -1",
    "1 / 0",
    "-1 / 0",
    "0 / 0",
    "1 > bool 0",
    "NaN == bool NaN",
    "Inf - Inf",
    "5 atan2 2",
    # vector-scalar
    'istio_requests_total{reporter="destination"} * 2',
    "2 - up",
    "node_memory_free_bytes / 1024 / 1024",
    "node_memory_free_bytes % 1000",
    '-up{job="node"}',
    "-up ^ 2",
    "up atan2 2",  # 2.42 keeps __name__ here (only + - * / % ^ drop it)
    "temperature_celsius * 0",  # Inf * 0 = NaN
    "temperature_celsius - temperature_celsius",
    "temperature_celsius + NaN",
    "1 / temperature_celsius",
    "up == 0",
    'up{job="kubernetes-pods"} == bool 1',
    "rate(istio_requests_total[5m]) > 0.5",
    "node_memory_free_bytes >= 4 * 1024 ^ 3",
    "temperature_celsius < bool 60",
    "temperature_celsius != NaN",
    "temperature_celsius >= Inf",
    "1 >= up",
    '0.5 < rate(istio_requests_total{reporter="source"}[5m])',
    "sum(up) + count(up) * 2 > bool 10",
    # vector-vector, one-to-one
    "istio_request_duration_milliseconds_sum / istio_request_duration_milliseconds_count",
    "rate(istio_request_duration_milliseconds_sum[5m]) "
    "/ rate(istio_request_duration_milliseconds_count[5m])",
    'istio_request_duration_milliseconds_bucket{le="+Inf"} '
    "== ignoring (le) istio_request_duration_milliseconds_count",
    'istio_request_duration_milliseconds_bucket{le="100"} '
    '> bool ignoring (le) istio_request_duration_milliseconds_bucket{le="50"}',
    'sum by (destination_workload) (rate(istio_requests_total{response_code=~"5.."}[5m])) '
    "/ sum by (destination_workload) (rate(istio_requests_total[5m]))",
    "istio_tcp_sent_bytes_total - on (instance, reporter, source_workload, "
    "destination_workload) istio_tcp_received_bytes_total",
    # many-to-one and one-to-many
    "sum by (destination_workload, response_code) (rate(istio_requests_total[5m])) "
    "/ ignoring (response_code) group_left sum by (destination_workload) "
    "(rate(istio_requests_total[5m]))",
    "sum by (destination_workload) (rate(istio_requests_total[5m])) / on (destination_workload) "
    "group_right sum by (destination_workload, response_code) (rate(istio_requests_total[5m]))",
    'rate(istio_requests_total{reporter="destination"}[5m]) * on (instance) group_left () up',
    'sum by (instance) (rate(istio_requests_total{reporter="destination"}[5m])) '
    "* on (instance) group_left (job) up",
    'node_memory_free_bytes * on (instance) group_left (job) up{job="node"}',
    'up{job="node"} + on (instance) group_right node_memory_free_bytes',
    # set operators
    'up{job="node"} and on (instance) node_memory_free_bytes',
    "up or node_memory_free_bytes",
    'istio_requests_total{reporter="source"} unless istio_requests_total{response_code="200"}',
    "up unless on (instance) (up == 0)",
    'up and ignoring (job) up{job="node"}',
    "vector(1) or vector(2)",
    "sum(rate(istio_requests_total[5m])) and on () (count(up) > 3)",
    "rate(istio_requests_total[5m]) > 1 or rate(istio_requests_total[5m]) * 0",
    "node_memory_free_bytes > 3e9 unless node_memory_free_bytes > 6e9",
]

FUNCTIONS = [
    # counters
    'rate(istio_requests_total{destination_workload="details-v1"}[5m])',  # resets
    'irate(istio_requests_total{reporter="source"}[1m])',
    "increase(istio_tcp_sent_bytes_total[10m])",  # a reset, a stale marker, a resume
    'rate(istio_requests_total{reporter="destination"}[30s])',
    "rate(deployment_replicas[10m])",  # one sample: empty
    "rate(up[5m])",
    "increase(istio_request_duration_milliseconds_count[5m])",
    "irate(istio_tcp_connections_opened_total[2m])",
    'resets(istio_requests_total{destination_workload="details-v1"}[50m])',
    "resets(istio_tcp_received_bytes_total[1h])",
    # non-finite values and huge resets inside counter and gauge histories
    "rate(edge_counter_total[5m])",
    "increase(edge_counter_total[10m])",
    "irate(edge_counter_total[1m])",
    "resets(edge_counter_total[10m])",
    "changes(edge_counter_total[5m])",
    "delta(edge_gauge[2m])",
    "deriv(edge_gauge[3m])",
    "predict_linear(edge_counter_total[5m], 60)",
    "sum_over_time(edge_gauge[2m])",
    "avg_over_time(edge_gauge[2m])",
    "min_over_time(edge_gauge[2m])",
    "max_over_time(edge_gauge[2m])",
    "stddev_over_time(edge_gauge[2m])",
    "stdvar_over_time(edge_counter_total[2m])",
    "quantile_over_time(0.5, edge_gauge[2m])",
    "sum_over_time(edge_counter_total[3m])",
    "avg_over_time(edge_counter_total[3m])",
    "holt_winters(edge_gauge[2m], 0.5, 0.5)",
    "sum by (case) (rate(edge_counter_total[2m]))",
    # gauges
    "delta(temperature_celsius[10m])",
    "delta(node_memory_free_bytes[5m])",
    "idelta(node_memory_free_bytes[2m])",
    "idelta(temperature_celsius[1m])",
    "deriv(node_memory_free_bytes[10m])",
    "deriv(cache_hit_ratio[5m])",
    "predict_linear(node_memory_free_bytes[15m], 3600)",
    "predict_linear(cache_hit_ratio[5m], 600)",
    "changes(up[30m])",
    "changes(temperature_celsius[10m])",  # NaN to NaN is no change
    "holt_winters(node_memory_free_bytes[10m], 0.5, 0.5)",
    'holt_winters(temperature_celsius{sensor="cpu0"}[5m], 0.1, 0.9)',
    # *_over_time
    "avg_over_time(temperature_celsius[5m])",
    "sum_over_time(up[10m])",
    "min_over_time(node_memory_free_bytes[10m])",
    "max_over_time(temperature_celsius[10m])",
    "count_over_time(up[10m])",
    'count_over_time(temperature_celsius{sensor="ambient"}[10m])',  # markers do not count
    "quantile_over_time(0.9, node_memory_free_bytes[10m])",
    "quantile_over_time(0.5, temperature_celsius[10m])",
    "stddev_over_time(cache_hit_ratio[10m])",
    "stdvar_over_time(node_memory_free_bytes[10m])",
    "last_over_time(temperature_celsius[10m])",
    'last_over_time(istio_requests_total{reporter="source"}[15m])',
    "present_over_time(up[10m])",
    'absent_over_time(up{instance="10.0.1.14:15020"}[1m])',  # after the pod went away
    "absent_over_time(no_such_metric[5m])",
    'absent_over_time(up{job="node"}[5m])',  # empty
    # absent
    'absent(no_such_metric{job="x", instance=~"y.*"})',
    "absent(sum(no_such_metric))",
    "absent(up)",  # empty
    'absent(up{job="node"} == 2)',
    # histograms
    "histogram_quantile(0.9, sum by (le) (rate(istio_request_duration_milliseconds_bucket[5m])))",
    "histogram_quantile(0.5, rate(istio_request_duration_milliseconds_bucket"
    '{reporter="destination"}[5m]))',
    "histogram_quantile(1, sum by (le) (rate(istio_request_duration_milliseconds_bucket[5m])))",
    "histogram_quantile(0, sum by (le) (rate(istio_request_duration_milliseconds_bucket[5m])))",
    "histogram_quantile(1.5, sum by (le) (rate(istio_request_duration_milliseconds_bucket[5m])))",
    "histogram_quantile(-0.5, sum by (le) (rate(istio_request_duration_milliseconds_bucket[5m])))",
    "histogram_quantile(0.99, sum by (le, destination_workload) "
    "(increase(istio_request_duration_milliseconds_bucket[10m])))",
    "histogram_quantile(0.5, sum by (le) (rate(istio_request_bytes_bucket[5m])))",
    "histogram_quantile(0.75, istio_request_bytes_bucket)",
    # labels
    'label_replace(up, "ip", "$1", "instance", "(.*):.*")',
    'label_replace(istio_requests_total{reporter="source"}, "dst", "$1-$2", '
    '"destination_workload", "(.*)-(v[0-9])")',
    'label_replace(up, "ip", "$1", "instance", "no(match)")',
    'label_replace(rate(istio_requests_total[5m]), "code_class", "${1}xx", "response_code", '
    '"(.).*")',
    'label_join(up, "id", "/", "job", "instance")',
    'label_join(istio_build, "x", "-", "component", "tag", "no_such_label")',
    'label_join(up, "job", "")',  # joining nothing removes the label
    # math
    "clamp(temperature_celsius, 0, 60)",
    "clamp_min(node_memory_free_bytes, 4e9)",
    "clamp_max(cache_hit_ratio, 0.8)",
    "clamp(up, 1, 0)",  # min > max: empty
    'abs(temperature_celsius{sensor="outdoor"})',
    "ceil(temperature_celsius)",
    "floor(temperature_celsius)",
    "exp(cache_hit_ratio)",
    "exp(node_memory_free_bytes)",  # +Inf
    "ln(node_memory_free_bytes)",
    "ln(temperature_celsius)",  # negative values: NaN
    "log2(node_memory_free_bytes)",
    "log10(temperature_celsius)",
    "sqrt(temperature_celsius)",
    "sgn(temperature_celsius)",
    "round(temperature_celsius)",
    "round(temperature_celsius, 5)",
    "round(node_memory_free_bytes / 1e6, 0.1)",
    'round(temperature_celsius{sensor="outdoor"}, 0.5)',
    "acos(cache_hit_ratio)",
    "asin(cache_hit_ratio)",
    "atan(temperature_celsius)",
    "acosh(temperature_celsius)",
    "asinh(temperature_celsius)",
    "atanh(cache_hit_ratio)",
    "cos(temperature_celsius)",
    "sin(temperature_celsius)",
    "tan(temperature_celsius)",
    "cosh(cache_hit_ratio)",
    "sinh(temperature_celsius)",
    "tanh(temperature_celsius)",
    "deg(cache_hit_ratio)",
    "rad(temperature_celsius)",
    "pi()",
    "pi() * 2",
    # sorting
    "sort(node_memory_free_bytes)",
    "sort_desc(sum by (destination_workload) (rate(istio_requests_total[5m])))",
    "sort(temperature_celsius)",  # with NaN and +/-Inf
    'sort_desc(rate(istio_requests_total{reporter="source"}[5m]))',
    # time and conversions
    "time()",
    "time() - 60",
    'timestamp(up{job="node"})',
    'timestamp(temperature_celsius{sensor="ambient"})',
    "vector(time())",
    "vector(1)",
    "scalar(sum(up))",
    "scalar(up)",  # more than one element: NaN
    "scalar(deployment_replicas)",
    "time() - timestamp(node_memory_free_bytes)",
    '"a string"',
    "3.5",
    # dates, without and with an argument
    "hour()",
    "minute()",
    "month()",
    "year()",
    "day_of_month()",
    "day_of_week()",
    "day_of_year()",
    "days_in_month()",
    'hour(timestamp(up{job="node"}))',
    'minute(timestamp(up{job="node"}))',
    "day_of_year(vector(1700000000))",
    "days_in_month(vector(1706745600))",  # February 2024: 29
    "day_of_week(vector(1706745600))",
    "month(vector(1706745600))",
    "year(vector(0))",
    "day_of_month(up)",
]

# The Istio Grafana dashboards (Mesh, Service, Workload) and Kiali, with their template
# variables filled in.
ISTIO_MESH = [
    'round(sum(irate(istio_requests_total{reporter="source"}[1m])), 0.001)',
    'round(sum(rate(istio_requests_total{reporter=~"source|waypoint"}[5m])), 0.01)',
    'sum(rate(istio_requests_total{reporter="source", response_code!~"5.*"}[1m])) '
    '/ sum(rate(istio_requests_total{reporter="source"}[1m]))',
    'sum(rate(istio_requests_total{reporter="destination", response_code!~"5.*"}[5m])) '
    '/ sum(rate(istio_requests_total{reporter="destination"}[5m]))',
    'sum(irate(istio_requests_total{reporter="source", response_code=~"4.*"}[1m]))',
    'sum(irate(istio_requests_total{reporter="source", response_code=~"5.*"}[1m]))',
    'max(pilot_k8s_cfg_events{type="VirtualService", event="add"}) '
    '- (max(pilot_k8s_cfg_events{type="VirtualService", event="delete"}) or max(up * 0))',
    'max(pilot_k8s_cfg_events{type="DestinationRule", event="add"}) '
    '- (max(pilot_k8s_cfg_events{type="DestinationRule", event="delete"}) or max(up * 0))',
    'sum(istio_build{component="pilot"}) by (tag)',
    'label_join(sum(rate(istio_requests_total{reporter="source", response_code="200"}[1m])) '
    "by (destination_workload, destination_workload_namespace, destination_service), "
    '"destination_workload_var", ".", "destination_workload", "destination_workload_namespace")',
    *[
        "label_join((histogram_quantile("
        + q
        + ', sum(rate(istio_request_duration_milliseconds_bucket{reporter="source"}[1m])) '
        "by (le, destination_workload, destination_workload_namespace)) / 1000) "
        "or histogram_quantile("
        + q
        + ', sum(rate(istio_request_duration_seconds_bucket{reporter="source"}[1m])) '
        "by (le, destination_workload, destination_workload_namespace)), "
        '"destination_workload_var", ".", "destination_workload", '
        '"destination_workload_namespace")'
        for q in ("0.50", "0.90", "0.99")
    ],
    'label_join((sum(rate(istio_requests_total{reporter="source", response_code!~"5.*"}[1m])) '
    "by (destination_workload, destination_workload_namespace) "
    '/ sum(rate(istio_requests_total{reporter="source"}[1m])) '
    "by (destination_workload, destination_workload_namespace)), "
    '"destination_workload_var", ".", "destination_workload", "destination_workload_namespace")',
    'label_join(sum(rate(istio_tcp_received_bytes_total{reporter="source"}[1m])) '
    "by (destination_workload, destination_workload_namespace, destination_service), "
    '"destination_workload_var", ".", "destination_workload", "destination_workload_namespace")',
    'label_join(sum(rate(istio_tcp_sent_bytes_total{reporter="source"}[1m])) '
    "by (destination_workload, destination_workload_namespace, destination_service), "
    '"destination_workload_var", ".", "destination_workload", "destination_workload_namespace")',
]

_Q = 'reporter=~"destination",destination_service=~"' + _REVIEWS_SVC + '"'
_IN = (
    'reporter=~"destination", connection_security_policy="mutual_tls", '
    f'destination_service=~"{_SVC}", source_workload=~".*", source_workload_namespace=~".*"'
)
ISTIO_SERVICE = [
    f"round(sum(irate(istio_requests_total{{{_Q}}}[5m])), 0.001)",
    f'sum(irate(istio_requests_total{{{_Q},response_code!~"5.*"}}[5m])) '
    f"/ sum(irate(istio_requests_total{{{_Q}}}[5m]))",
    *[
        f"(histogram_quantile({q}, sum(irate(istio_request_duration_milliseconds_bucket"
        f"{{{_Q}}}[1m])) by (le)) / 1000) or histogram_quantile({q}, "
        f"sum(irate(istio_request_duration_seconds_bucket{{{_Q}}}[1m])) by (le))"
        for q in ("0.50", "0.90", "0.99")
    ],
    f"histogram_quantile(0.50, sum(irate(istio_request_bytes_bucket{{{_Q}}}[1m])) by (le))",
    'sum(irate(istio_tcp_received_bytes_total{reporter=~"destination", '
    'destination_service=~"mongodb.bookinfo.svc.cluster.local"}[1m]))',
    f"round(sum(irate(istio_requests_total{{{_IN}}}[5m])) "
    "by (source_workload, source_workload_namespace, response_code), 0.001)",
    'round(sum(irate(istio_requests_total{connection_security_policy!="mutual_tls", '
    f'destination_service=~"{_SVC}", reporter=~"source"}}[5m])) '
    "by (source_workload, source_workload_namespace, response_code), 0.001)",
    f'sum(irate(istio_requests_total{{{_IN}, response_code!~"5.*"}}[5m])) '
    "by (source_workload, source_workload_namespace) "
    f"/ sum(irate(istio_requests_total{{{_IN}}}[5m])) by (source_workload, "
    "source_workload_namespace)",
    f"(histogram_quantile(0.90, sum(irate(istio_request_duration_milliseconds_bucket{{{_IN}}}"
    "[1m])) by (source_workload, source_workload_namespace, le)) / 1000)",
    f"histogram_quantile(0.99, sum(irate(istio_request_bytes_bucket{{{_IN}}}[1m])) "
    "by (source_workload, source_workload_namespace, le))",
    'round(sum(irate(istio_tcp_sent_bytes_total{reporter=~"destination", '
    'connection_security_policy="mutual_tls", destination_service=~"redis.shop.svc.cluster.local",'
    ' source_workload=~".*", source_workload_namespace=~".*"}[5m])) '
    "by (source_workload, source_workload_namespace), 0.001)",
]

_WL = 'reporter=~"destination",destination_workload_namespace=~"bookinfo",'
ISTIO_WORKLOAD = [
    f'round(sum(irate(istio_requests_total{{{_WL}destination_workload=~"reviews-v2"}}[5m])), '
    "0.001)",
    f'sum(irate(istio_requests_total{{{_WL}destination_workload=~"reviews-v2",'
    'response_code!~"5.*"}[5m])) '
    f'/ sum(irate(istio_requests_total{{{_WL}destination_workload=~"reviews-v2"}}[5m]))',
    "(histogram_quantile(0.99, sum(irate(istio_request_duration_milliseconds_bucket"
    f'{{{_WL}destination_workload=~"reviews-v2"}}[1m])) by (le)) / 1000) or '
    "histogram_quantile(0.99, sum(irate(istio_request_duration_seconds_bucket"
    f'{{{_WL}destination_workload=~"reviews-v2"}}[1m])) by (le))',
    f'sum(irate(istio_tcp_sent_bytes_total{{{_WL}destination_workload=~"mongodb-v1"}}[1m])) '
    f'+ sum(irate(istio_tcp_received_bytes_total{{{_WL}destination_workload=~"mongodb-v1"}}'
    "[1m]))",
    'round(sum(irate(istio_requests_total{destination_principal=~"spiffe.*", '
    'source_workload_namespace=~"bookinfo", source_workload=~"productpage-v1", '
    'reporter="source", destination_service=~".*"}[5m])) by (destination_service, '
    "response_code), 0.001)",
    'sum(irate(istio_requests_total{reporter="source", source_workload=~"productpage-v1", '
    'source_workload_namespace=~"bookinfo", response_code!~"5.*"}[5m])) by (destination_service)'
    ' / sum(irate(istio_requests_total{reporter="source", source_workload=~"productpage-v1", '
    'source_workload_namespace=~"bookinfo"}[5m])) by (destination_service)',
    "histogram_quantile(0.50, sum(irate(istio_request_duration_milliseconds_bucket"
    '{reporter="source", source_workload=~"istio-ingressgateway-v1", '
    'source_workload_namespace=~"istio-system"}[1m])) by (destination_service, le)) / 1000',
    'round(sum(irate(istio_tcp_received_bytes_total{reporter="source", '
    'source_workload_namespace=~"bookinfo", source_workload=~"ratings-v1"}[5m])) '
    "by (destination_service), 0.001)",
]

KIALI = [
    'sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace='
    '"bookinfo"}[5m])) by (source_workload,destination_service,response_code)',
    "histogram_quantile(0.95, sum(rate(istio_request_duration_milliseconds_bucket{reporter="
    '"destination",destination_workload_namespace="bookinfo",destination_workload='
    '"productpage-v1"}[5m])) by (le,source_workload))',
    'sum(rate(istio_requests_total{reporter="source",source_workload_namespace="bookinfo"}'
    f"[1m])) by ({_KIALI_GRAPH_BY}) > 0",
    'sum(rate(istio_requests_total{reporter="destination",source_workload_namespace!="bookinfo",'
    f'destination_workload_namespace="bookinfo"}}[1m])) by ({_KIALI_GRAPH_BY}) > 0',
    'sum(rate(istio_tcp_sent_bytes_total{reporter="source",source_workload_namespace="shop"}'
    "[1m])) by (source_workload_namespace,source_workload,destination_service,"
    "destination_workload) > 0",
    'sum(rate(istio_request_duration_milliseconds_sum{reporter="destination",'
    'destination_workload_namespace="bookinfo"}[5m])) by (destination_workload) '
    '/ sum(rate(istio_request_duration_milliseconds_count{reporter="destination",'
    'destination_workload_namespace="bookinfo"}[5m])) by (destination_workload)',
    'sum(rate(istio_requests_total{reporter="destination",destination_service_namespace='
    '"bookinfo",response_code=~"[5|4].*"}[5m])) by (destination_service_name, response_code)',
    'sum(rate(istio_request_bytes_sum{reporter="destination",destination_workload_namespace='
    '"shop"}[5m])) by (source_workload)',
    'histogram_quantile(0.5, sum(rate(istio_request_bytes_bucket{reporter="destination",'
    'destination_workload_namespace="bookinfo"}[5m])) by (le,destination_workload))',
    'sum(rate(istio_tcp_received_bytes_total{reporter="destination",destination_service_namespace'
    '="bookinfo"}[5m])) by (source_workload, destination_workload)',
    'sum(rate(istio_tcp_connections_opened_total{reporter="destination"}[5m])) '
    "by (destination_workload)",
    "count(count by (destination_workload) (istio_requests_total{destination_workload_namespace="
    '"bookinfo"}))',
    'round(sum(rate(istio_requests_total{reporter="source",source_workload_namespace="shop",'
    'request_protocol="grpc"}[5m])) by (destination_service, response_code), 0.001)',
    "avg(histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket{reporter="
    '"destination",destination_service_namespace="bookinfo"}[5m])) by (le,destination_service)))',
]

VALID: list[str] = (
    SELECTORS
    + MODIFIERS
    + SUBQUERIES
    + AGGREGATIONS
    + BINARY_OPERATORS
    + FUNCTIONS
    + ISTIO_MESH
    + ISTIO_SERVICE
    + ISTIO_WORKLOAD
    + KIALI
)

# Empty in Prometheus on purpose, at every evaluation time of the suite.
EXPECTED_EMPTY = {
    'istio_requests_total{grpc_response_status!=""}',
    "rate(deployment_replicas[10m])",
    'absent_over_time(up{job="node"}[5m])',
    "absent(up)",
    "clamp(up, 1, 0)",
}

# Refused by the parser: 400 bad_data.
PARSE_ERRORS = [
    "sum(",
    "rate(istio_requests_total)",
    "istio_requests_total[5m] + 1",
    "no_such_function(up)",
    'up{job="node"',
    '{job=~".*"}',  # no matcher that rejects the empty string
    "1 > 0",  # comparisons between scalars need bool
    'up{job=~"("}',
    '"foo" + 1',
    "topk(up, 1)",
    "sum(up) offset 5m",
    "up[5m:1m:1m]",
    "up and 1",
    "count_values(1, up)",
    "quantile_over_time(up[5m])",
    "histogram_quantile(0.9)",
    "up @ foo",
    "rate(up[5m] @ start() @ end())",
    "sum by (job) up",
    "1 +",
    "up[5x]",
]

# Parse, but fail while evaluating: 422 execution.
EXECUTION_ERRORS = [
    "istio_requests_total + on () istio_tcp_sent_bytes_total",  # many-to-many
    "rate(istio_requests_total[5m]) / on (destination_workload) rate(istio_requests_total[5m])",
    "up * on (job) group_left node_memory_free_bytes",  # the "one" side is not unique
    'label_replace(up, "instance", "x", "instance", ".*")',  # duplicate label sets
    'abs({__name__=~"istio_tcp_sent_bytes_total|istio_tcp_received_bytes_total"})',
    'rate({__name__=~"istio_tcp_.*"}[5m])',
]


def render(expr: str, timeline: Timeline) -> str:
    """``expr`` with ``$AT`` replaced by the dataset's fixed ``@`` timestamp."""
    return expr.replace("$AT", timeline.at_seconds())


_ORDERED = re.compile(r"^\s*sort(_desc)?\s*\(")


def is_ordered(expr: str) -> bool:
    """Whether the result order of an instant query is part of the answer (top-level
    ``sort``/``sort_desc``)."""
    return bool(_ORDERED.match(expr))


# Parse errors whose message and position Canopy gives exactly as Prometheus does (PARSE_ERRORS
# too, now; the few forms that still differ are listed in docs/promql.md).
PARSE_ERROR_MESSAGES = [
    "sum(",
    "rate(x)",
    'foo{a="b"',
    "x +",
    "rate(x[5m]",
    "abs(x, y)",
    "x[5m] + 1",
    "label_replace(x)",
    "{}",
    "x offset",
    "rate(  x  )",
    "sum(rate(x))",
    "histogram_quantile(0.9, x[5m])",
    "abs(x[5m])",
    "irate(x) + rate(y[1m])",
    "count_over_time(x)",
    "topk(x, y)",
    "round(x, y[5m])",
    "1 +",
    "nosuchfunc(x)",
    "sum by (a) (x) + on(",
    "x[5m",
    "rate(sum(x))",
    "sum(\n  rate(\n    up))",
]

# Errors deep inside queries: in function arguments and aggregations, inside binary operations
# and their on/ignoring/group_* modifiers, after "by (", in range and subquery brackets, bad
# durations and numbers, unclosed strings, braces, brackets and parentheses, bad regexes, type
# errors of inner expressions, and multi-line queries (line:column). Each is compared, message
# and position, with the real Prometheus's answer.
MID_QUERY_PARSE_ERRORS = [
    "sum by (a (x)",
    "sum(rate(x[5m])) by (a b)",
    "sum x",
    "sum(,)",
    "sum(rate(,))",
    "sum(x) y",
    "x y",
    "rate(x y)",
    "x + )",
    "x)",
    "x]",
    'foo{a="b" c="d"}',
    "foo{a}",
    "foo{a=}",
    'foo{a="b",,}',
    "{1}",
    'foo{a:b="c"}',
    "x @",
    "x @ foo",
    "x @ start x",
    "x offset 5",
    "x offset -",
    "x[5m:1]",
    "x[5m:1m x]",
    "x[]",
    "x[:5m]",
    "x[5x]",
    "x[5hs]",
    "x[0s]",
    "x[5m][5m]",
    "sum(x",
    '"abc',
    "'abc",
    "`abc",
    '"a\\qb"',
    'x + "abc',
    "sum by (a:b) (x)",
    "sum by (1) (x)",
    "sum by x (y)",
    "x * on(a) group_left (b)",
    "x + on(a b) y",
    "x + bool",
    "x + ignoring",
    "1 + foo(x)",
    "foo(x) +",
    "rate(x,)",
    "sum(x,)",
    "(x y)",
    "(x",
    "sum(x) + (y z)",
    "x !~ y",
    "x =~ y",
    "x = y",
    "x ! y",
    "$",
    "x # comment\n+",
    "sum(\n  rate(\n    x[5m] y))",
    "x +\n  (y\n  z)",
    "topk(x)",
    "sum(a, b)",
    "sum without x",
    "min_over_time(x[5m:1m:1m])",
    "x @ 1 offset",
    "x[5]",
    "x[5:1]",
    "x offset 1.5",
    "x offset -5",
    "x[5m:1.5]",
    "x[1.5m]",
    "x[5m+1m]",
    "x offset 5m[5m]",
    "x @ 5 @ 6",
    "sum(x) offset 5m",
    "-x[5m]",
    "x offset 5m offset 1m",
    "1e",
    "0x",
    "1e+",
    "5..",
    "0xfg",
    "x and bool y",
    "x or ignoring(a) group_left y",
    "sum(x) by (a,,b)",
    "sum(x) by (,)",
    "sum(x) by (a) without (b)",
    "sum without (a) by (b) (x)",
    'x{a="b"}{c="d"}',
    'x{a="b"',
    'x{a="b",',
    'x{a="b"=',
    'x{"a"="b"}',
    'x{a!"b"}',
    'x{a="\\xZZ"}',
    'x{a="\\400"}',
    'x{a="\\uD800"}',
    'x{a="b\\"}',
    "x + on(a) 1",
    '"a" + 1',
    'x + "a"',
    'sum("a")',
    "rate(x[5m])[5m]",
    "rate(x[5m][5m:])",
    "x[5m][5m:]",
    "1 + x[5m]",
    "time(1)",
    "1 and 1",
    "x + -y[5m]",
    '-"a"',
    "count_values(1, x)",
    'topk("a", x)',
    "quantile(x, y)",
    "x unless ignoring(a) group_left y",
    "x * on(a) group_left(a) y",
    "vector(x[5m])",
    '{__name__=""}',
    '{a=""}',
    '{a=~".*"}',
    'x{__name__="y"}',
    'x{a=~"("}',
    "sum(x) @ 5",
    "(x) @ 5",
    "x @ 5 @ 5",
    "x offset 5m offset 5m",
    "x[5m] offset 5m offset 5m",
    "sum by (destination_workload (rate(istio_requests_total[5m]))",
    'sum(rate(istio_requests_total{reporter="destination"}[5m])) by (destination_workload code)',
    "histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket[1m])) by (le)",
    "histogram_quantile(0.99, sum by (le) (rate(x_bucket[1m] offset)))",
    'rate(istio_requests_total{reporter="destination", response_code=~"5.."[5m])',
    'rate(istio_requests_total{reporter="destination" response_code=~"5.."}[5m])',
    'rate(istio_requests_total{reporter="destination", response_code=~"5..}[5m])',
    "sum(rate(x[5m])) / sum(rate(y[5m]) by (a)",
    "sum(rate(x[5m])) / on(a b) sum(rate(y[5m]))",
    "sum(rate(x[5m])) / ignoring(a) group_left(b c) sum(rate(y[5m]))",
    "max_over_time(rate(x[5m])[1h:5m x])",
    "max_over_time(rate(x[5m])[1h:5x])",
    "max_over_time(rate(x[5m])[1h5:])",
    "max_over_time(rate(x[5m])[1h:5m)",
    "max_over_time(rate(x[5m])[1h:5m:1m])",
    "rate(x[5m]) + rate(y[5])",
    "rate(x[5m]) + rate(y[5mm])",
    "rate(x[5m]) + rate(y[1y2y])",
    "rate(x[5m]) + rate(y[5m1h])",
    "rate(x[5m]) + rate(y[0m])",
    "rate(x[5m]) + rate(y[-5m])",
    'label_replace(x, "a", "$1", "b", "(.*)',
    'label_replace(x, "a", "$1", "b", \'(.*))',
    'label_replace(x, "a", "$1", "b", `(.*))',
    'label_replace(x, "a", "$1", "b")',
    'label_replace(x, "a", "$1", "b", "(.*)", "c")',
    'label_join(x, "a", ",", "b", "c", 1)',
    "round(x, 1, 2)",
    "round()",
    "day_of_week(x, y)",
    "sum(\n  rate(x[5m]\n)",
    "sum(\n  rate(x[5m])\n) by (\n  a\n  b\n)",
    'rate(\n  x{a="b",\n    c="d"\n  }[5m]\n) +\n  foo(y)',
    'x +\n\n  y{a=~"("}',
    "sum(x) by (a) +\n  on(b\n  group_left y",
    'abs(x) + abs(x{a=~"[a"})',
    "abs(x) + (abs(y) offset 5m)",
    "sum(x) + topk(x, y)",
    "sum(x) + topk(5, y[5m])",
    'count_values("a", x) + count_values(1, y)',
    "quantile(0.5, x) + quantile(y, z)",
    "sum(x) + sum(y, z)",
    "sum(x) + sum()",
    "sum(x) + topk(5)",
    "rate(x[5m]) and on(a) group_left rate(y[5m])",
    "rate(x[5m]) or on(a) 1",
    "x > bool (1 == 2)",
    "(1 == 2)",
    "x * (1 and 2)",
    "x + -rate(y[5m])[5m]",
    "x + -(y[5m])",
    "rate(x[5m] @ 100 @ 200)",
    "rate(x[5m] offset 1m offset 2m)",
    "rate(x @ 100 [5m])",
    "rate((x)[5m])",
    "rate(sum(x)[5m])",
    "rate(x[5m])[5m:1m] + 1",
    "rate(x[5m],)",
    "time() + time(x)",
    "vector(x)",
    "scalar(x[5m])",
    "sort(x) + sort(x, y)",
    "x + y z",
    'x + y{a="b"} z',
    "x + y[5m] z",
    "(x + y) z",
    "foo(x) + bar(y)",
    "x + foo(y)",
    'x{a="b"} offset 5m @ 100 offset 1m',
    "x @ start() offset 5m @ end()",
    "x @ start(1)",
    "x @ start",
    "x @ end)",
    "(x))",
    "x + (y",
    "sum(x))",
    "x OFFSET 5",
    "x Offset 1.5",
    'sum(x{a="b"}) by (a) OFFSET 5',
]
