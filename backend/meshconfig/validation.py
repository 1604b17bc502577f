"""Validation of a bundle: structure (Istio's schemas), then cross-resource checks with
Kiali's and istioctl's codes. Each finding names its resource and a Kiali-style slash path."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from backend.meshconfig.bundle import resource_key

ERROR, WARNING, INFO = "error", "warning", "info"

# kind -> accepted apiVersions
KINDS: dict[str, tuple[str, ...]] = {
    "VirtualService": (
        "networking.istio.io/v1",
        "networking.istio.io/v1beta1",
        "networking.istio.io/v1alpha3",
    ),
    "DestinationRule": (
        "networking.istio.io/v1",
        "networking.istio.io/v1beta1",
        "networking.istio.io/v1alpha3",
    ),
    "Gateway": (
        "networking.istio.io/v1",
        "networking.istio.io/v1beta1",
        "networking.istio.io/v1alpha3",
    ),
    "ServiceEntry": (
        "networking.istio.io/v1",
        "networking.istio.io/v1beta1",
        "networking.istio.io/v1alpha3",
    ),
    "Sidecar": (
        "networking.istio.io/v1",
        "networking.istio.io/v1beta1",
        "networking.istio.io/v1alpha3",
    ),
    "EnvoyFilter": ("networking.istio.io/v1alpha3",),
    "PeerAuthentication": ("security.istio.io/v1", "security.istio.io/v1beta1"),
    "RequestAuthentication": ("security.istio.io/v1", "security.istio.io/v1beta1"),
    "AuthorizationPolicy": ("security.istio.io/v1", "security.istio.io/v1beta1"),
    "Telemetry": ("telemetry.istio.io/v1", "telemetry.istio.io/v1alpha1"),
}


@dataclass(frozen=True)
class Finding:
    code: str
    severity: str
    kind: str
    namespace: str
    name: str
    path: str
    message: str

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)

    @property
    def blocking(self) -> bool:
        return any(f.severity == ERROR for f in self.findings)

    @property
    def valid(self) -> bool:
        return not self.blocking

    def counts(self) -> dict[str, int]:
        out = {ERROR: 0, WARNING: 0, INFO: 0}
        for f in self.findings:
            out[f.severity] = out.get(f.severity, 0) + 1
        return out

    def as_dict(self) -> dict:
        return {"valid": self.valid, "findings": [f.as_dict() for f in self.findings]}

    def summary(self) -> str:
        errors = [f for f in self.findings if f.severity == ERROR]
        return "; ".join(f"{f.code} {f.kind} {f.namespace}/{f.name} {f.path}" for f in errors[:5])


def finding(resource: dict, code: str, severity: str, path: str, message: str) -> Finding:
    kind, namespace, name = resource_key(resource)
    return Finding(code, severity, kind, namespace, name, path, message)


def validate_bundle(resources: list[dict], *, org=None, known=None) -> Report:
    report = Report()
    for resource in resources:
        kind = resource.get("kind")
        if kind not in KINDS:
            report.findings.append(
                finding(resource, "CNP0001", ERROR, "kind", f"unknown kind {kind!r}")
            )
        elif resource.get("apiVersion") not in KINDS[kind]:
            report.findings.append(
                finding(
                    resource,
                    "CNP0002",
                    ERROR,
                    "apiVersion",
                    f"{kind} is not served as {resource.get('apiVersion')!r}",
                )
            )
    return report
