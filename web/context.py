from web.orgs import current_membership


def current_org(request):
    """The org the dashboard is showing, and the others the user may switch to."""
    membership, memberships = current_membership(request)
    return {
        "current_org": membership.org if membership else None,
        "current_role": membership.role if membership else None,
        "user_memberships": memberships,
    }
