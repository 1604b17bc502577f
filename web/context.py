from django.conf import settings

from backend.tenancy.access import session_access, session_memberships


def current_org(request):
    """The org the dashboard is showing, and the others the user may switch to."""
    access = session_access(request)
    return {
        "current_org": access.org if access else None,
        "current_role": access.role if access else None,
        "user_memberships": session_memberships(request),
        "signup_enabled": settings.SIGNUP_ENABLED,
    }
