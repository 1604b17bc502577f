"""What validation says: findings (Kiali's shape: code, severity, the resource, a slash path,
a message), the report of a bundle, and what Canopy knows of the tenant's mesh."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from backend.meshconfig.bundle import resource_key

ERROR, WARNING, INFO = "error", "warning", "info"
SEVERITY_ORDER = {ERROR: 0, WARNING: 1, INFO: 2}


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


def finding(resource: dict, code: str, severity: str, path: str, message: str) -> Finding:
    kind, namespace, name = resource_key(resource)
    return Finding(code, severity, kind, namespace, name, path, message)


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

    def sort(self) -> None:
        self.findings.sort(
            key=lambda f: (SEVERITY_ORDER.get(f.severity, 3), f.kind, f.namespace, f.name, f.path)
        )

    def as_dict(self) -> dict:
        return {"valid": self.valid, "findings": [f.as_dict() for f in self.findings]}

    def summary(self) -> str:
        errors = [f for f in self.findings if f.severity == ERROR]
        return "; ".join(f"{f.code} {f.kind} {f.namespace}/{f.name} {f.path}" for f in errors[:5])


@dataclass(frozen=True)
class Workload:
    namespace: str
    name: str
    labels: dict[str, str]
    # FQDNs of the services that sent this workload traffic (from Istio's metrics).
    services: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Known:
    """The tenant's mesh as Canopy knows it: service FQDNs and namespaces seen in its Istio
    metrics and traces, and workloads with the labels the metrics carry (``app``,
    ``version``). The bundle's own ServiceEntries, Gateways and namespaces are added by the
    validator. ``auto_mtls`` is Istio's ``meshConfig.enableAutoMtls`` (on by default)."""

    services: frozenset[str] = frozenset()
    namespaces: frozenset[str] = frozenset()
    workloads: tuple[Workload, ...] = ()
    auto_mtls: bool = True
    root_namespace: str = "istio-system"
    # Workload label names the metrics carry: a subset selecting on any other label cannot be
    # judged from what Canopy knows.
    workload_label_names: frozenset[str] = frozenset({"app", "version"})

    @property
    def empty(self) -> bool:
        return not self.services and not self.workloads
