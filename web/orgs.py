"""Which organization the dashboard shows: the one kept in the session, else the first."""

from __future__ import annotations

from backend.tenancy.api_base import SESSION_ORG_KEY
from backend.tenancy.models import Membership


def current_membership(request) -> tuple[Membership | None, list[Membership]]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not hasattr(user, "memberships"):
        return None, []
    cached = getattr(request, "_canopy_memberships", None)
    if cached is None:
        memberships = list(user.memberships.select_related("org").order_by("org__slug"))
        wanted = request.session.get(SESSION_ORG_KEY)
        current = next((m for m in memberships if m.org.slug == wanted), None)
        if current is None and memberships:
            current = memberships[0]
        cached = request._canopy_memberships = (current, memberships)
    return cached
