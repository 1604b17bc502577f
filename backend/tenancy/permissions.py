"""Scopes a request holds, whether it came with a token or a logged-in member's session."""

from __future__ import annotations

from backend.tenancy.models import ALL_SCOPES, Membership, Role, Scope

_READ = frozenset({Scope.METRICS_READ, Scope.TRACES_READ, Scope.CONFIG_READ})
_WRITE = frozenset({Scope.METRICS_WRITE, Scope.TRACES_WRITE, Scope.CONFIG_WRITE})

ROLE_SCOPES: dict[str, frozenset[str]] = {
    Role.VIEWER: _READ,
    Role.MEMBER: _READ | _WRITE,
    Role.ADMIN: frozenset(ALL_SCOPES),
    Role.OWNER: frozenset(ALL_SCOPES),
}


def scopes_for_membership(membership: Membership) -> frozenset[str]:
    return ROLE_SCOPES.get(membership.role, frozenset())


def grants(held: frozenset[str], wanted: list[str] | tuple[str, ...]) -> bool:
    """Any one of ``wanted`` suffices; ``admin`` grants everything."""
    return Scope.ADMIN in held or any(scope in held for scope in wanted)
