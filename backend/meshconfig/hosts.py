"""Host names as Kiali resolves them (``ISTIO-VALIDATION.md`` section 1)."""

from __future__ import annotations

DOMAIN = "svc.cluster.local"


def fqdn(host: str, namespace: str, namespaces: frozenset[str] | set[str]) -> str:
    """Kiali's GetHost: a short name is resolved in the namespace of the object holding it."""
    host = (host or "").strip().lower()
    if not host or "*" in host:
        return host
    if host.endswith("." + DOMAIN):
        return host
    parts = host.split(".")
    if len(parts) == 1:
        return f"{host}.{namespace}.{DOMAIN}"
    if len(parts) == 3 and parts[2] == "svc":
        return f"{parts[0]}.{parts[1]}.{DOMAIN}"
    if len(parts) == 2 and parts[1] in namespaces:
        return f"{parts[0]}.{parts[1]}.{DOMAIN}"
    return host  # opaque: a ServiceEntry host


def is_wildcard(host: str) -> bool:
    return "*" in host


def wildcard_covers(pattern: str, host: str) -> bool:
    """``*`` covers everything, ``*.x`` covers hosts ending in ``.x``; else equality."""
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) or host == pattern
    return pattern == host


def hosts_overlap(a: str, b: str) -> bool:
    return wildcard_covers(a, b) or wildcard_covers(b, a)


def service_entry_covers(se_host: str, host: str) -> bool:
    """Kiali's ServiceEntry lookup (quirk kept: ``example.com`` covers ``api.example.com``)."""
    se_host = se_host.lower()
    if se_host.startswith("*."):
        return host.endswith(se_host[1:])
    return host == se_host or host.endswith("." + se_host)


def namespace_of(fqdn_host: str) -> str | None:
    """``reviews.bookinfo.svc.cluster.local`` -> ``bookinfo``; None for other hosts."""
    if not fqdn_host.endswith("." + DOMAIN):
        return None
    parts = fqdn_host[: -len(DOMAIN) - 1].split(".")
    return parts[1] if len(parts) == 2 else None


def short_name(fqdn_host: str) -> str:
    return fqdn_host.split(".", 1)[0]
