"""Cost of validating a mesh configuration bundle (no server, no database).

    .venv/bin/python bench/meshconfig_validate.py
    .venv/bin/python bench/meshconfig_validate.py --resources 10 100 1000 --seconds 2

A bundle of ``N`` resources routes N/2 services: per service a VirtualService (two weighted
subsets, a header match with an RE2 regex) and a DestinationRule (two subsets), all in one
namespace, against a known mesh that has every service and its v1/v2 workloads. Timed, per
bundle size: reading the YAML stream (the reference: what any request carrying the bundle
costs anyway, ``parsing.resources_from_yaml`` with libyaml), structural validation against
Istio's schemas, the cross-resource checks, and the whole ``validate_bundle``. Median wall
time of repeated calls in this process.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.meshconfig.checks import CHECKS, Mesh
from backend.meshconfig.diff import bundle_yaml
from backend.meshconfig.findings import Known, Workload
from backend.meshconfig.parsing import resources_from_yaml
from backend.meshconfig.schema import structural_findings
from backend.meshconfig.validation import validate_bundle
from bench.harness.table import print_columns
from bench.harness.timing import CallTimes

NS = "shop"


def bundle(n: int) -> tuple[list[dict], Known]:
    resources, services, workloads = [], set(), []
    for i in range(max(1, n // 2)):
        name = f"svc-{i}"
        fqdn = f"{name}.{NS}.svc.cluster.local"
        services.add(fqdn)
        for version in ("v1", "v2"):
            workloads.append(
                Workload(NS, f"{name}-{version}", {"app": name, "version": version}, {fqdn})
            )
        resources.append(
            {
                "apiVersion": "networking.istio.io/v1",
                "kind": "VirtualService",
                "metadata": {"name": name, "namespace": NS},
                "spec": {
                    "hosts": [name],
                    "http": [
                        {
                            "match": [{"headers": {"x-canary": {"regex": "^(yes|true)$"}}}],
                            "route": [{"destination": {"host": name, "subset": "v2"}}],
                        },
                        {
                            "route": [
                                {"destination": {"host": name, "subset": "v1"}, "weight": 90},
                                {"destination": {"host": name, "subset": "v2"}, "weight": 10},
                            ],
                            "timeout": "5s",
                            "retries": {"attempts": 3, "perTryTimeout": "2s"},
                        },
                    ],
                },
            }
        )
        resources.append(
            {
                "apiVersion": "networking.istio.io/v1",
                "kind": "DestinationRule",
                "metadata": {"name": name, "namespace": NS},
                "spec": {
                    "host": name,
                    "trafficPolicy": {"loadBalancer": {"simple": "LEAST_REQUEST"}},
                    "subsets": [
                        {"name": "v1", "labels": {"version": "v1"}},
                        {"name": "v2", "labels": {"version": "v2"}},
                    ],
                },
            }
        )
    known = Known(
        services=frozenset(services), namespaces=frozenset({NS}), workloads=tuple(workloads)
    )
    return resources, known


def timed(call, seconds: float) -> float:
    times = CallTimes(seconds=seconds, min_calls=3)
    while times.more():
        times.time(call)
    return times.median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--resources", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    validate_bundle(*bundle(2)[:1], known=bundle(2)[1])  # import Istio's models once
    rows = [
        [
            "resources",
            "YAML read ms (ref)",
            "schema ms",
            "cross checks ms",
            "validate_bundle ms",
            "findings",
            "x YAML read",
        ]
    ]
    for n in args.resources:
        resources, known = bundle(n)
        text = bundle_yaml(resources)
        assert resources_from_yaml(text) == resources
        read = timed(lambda text=text: resources_from_yaml(text), args.seconds)
        schema = timed(lambda r=resources: [structural_findings(x) for x in r], args.seconds)
        cross = timed(
            lambda r=resources, k=known: [list(c(Mesh(resources=r, known=k))) for c in CHECKS],
            args.seconds,
        )
        total = timed(lambda r=resources, k=known: validate_bundle(r, known=k), args.seconds)
        findings = len(validate_bundle(resources, known=known).findings)
        rows.append(
            [
                str(len(resources)),
                f"{read * 1e3:.1f}",
                f"{schema * 1e3:.1f}",
                f"{cross * 1e3:.1f}",
                f"{total * 1e3:.1f}",
                str(findings),
                f"{total / read:.2f}",
            ]
        )
    print_columns(rows)


if __name__ == "__main__":
    main()
