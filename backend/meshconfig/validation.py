"""Validation of a bundle: structure against Istio's schemas (``schema.py``), then the
cross-resource checks (``checks.py``), against what Canopy knows of the tenant's mesh
(``selectors.known_for_org``). Findings carry Kiali's fields and slash paths; errors block a
publish."""

from __future__ import annotations

from backend.meshconfig.checks import CHECKS, Mesh, check_duplicates
from backend.meshconfig.findings import ERROR, INFO, WARNING, Finding, Known, Report, Workload
from backend.meshconfig.schema import KINDS, structural_findings

__all__ = [
    "ERROR",
    "INFO",
    "KINDS",
    "WARNING",
    "Finding",
    "Known",
    "Report",
    "Workload",
    "validate_bundle",
]

MAX_RESOURCES = 1000
MAX_FINDINGS = 500


def validate_bundle(resources: list[dict], *, org=None, known: Known | None = None) -> Report:
    """All findings for a bundle. ``known`` defaults to what Canopy knows of ``org`` (or
    nothing, without an org)."""
    if known is None:
        if org is not None:
            from backend.meshconfig.selectors import known_for_org

            known = known_for_org(org=org)
        else:
            known = Known()
    report = Report()
    checked = []
    for resource in resources[:MAX_RESOURCES]:
        found = structural_findings(resource)
        report.findings.extend(found)
        if not any(f.severity == ERROR for f in found):
            checked.append(resource)
    if len(resources) > MAX_RESOURCES:
        report.findings.append(
            Finding("CNP0004", ERROR, "", "", "", "", f"at most {MAX_RESOURCES} resources")
        )
    report.findings.extend(check_duplicates([r for r in resources if isinstance(r, dict)]))
    mesh = Mesh(resources=checked, known=known)
    for check in CHECKS:
        report.findings.extend(check(mesh))
    report.sort()
    del report.findings[MAX_FINDINGS:]
    return report
