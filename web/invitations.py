"""Joining an org: the members page's invitation form, and the invitation link's page where
the invitee signs in (or signs up, when the server allows) and accepts."""

from __future__ import annotations

import contextlib

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from backend.tenancy import selectors, services
from backend.tenancy.access import SESSION_ORG_KEY, OrgNotFound, session_org_select
from backend.tenancy.models import Role
from web.views import _access_or_404


@login_required
def members(request: HttpRequest) -> HttpResponse:
    access = _access_or_404(request)
    if request.method == "POST":
        if not access.can_manage:
            raise Http404("only owners and admins invite")
        try:
            services.invitation_create(
                org=access.org,
                email=request.POST.get("email", "")[:254],
                role=request.POST.get("role", Role.MEMBER),
                actor=request.user,
            )
        except ValidationError as exc:
            messages.error(request, "; ".join(exc.messages))
        else:
            # The same words whether or not the address has an account here.
            messages.success(request, "Invitation sent. It is valid for a limited time.")
        return redirect("web:members")
    return render(
        request,
        "web/members.html",
        {
            "members": selectors.membership_list(org=access.org),
            "can_manage": access.can_manage,
            "invitations": selectors.invitation_list(org=access.org)[:50]
            if access.can_manage
            else [],
            "roles": Role.choices,
            "is_owner": access.role == Role.OWNER,
            "org": access.org,
        },
    )


@login_required
@require_POST
def org_delete(request: HttpRequest) -> HttpResponse:
    """The owner deletes the org (typing its slug): closed at once for every member, its data
    purged in the background. Anyone else gets the same 404 as for an org they cannot see."""
    access = _access_or_404(request)
    if access.role != Role.OWNER:
        raise Http404("only the owner deletes the organization")
    try:
        services.org_delete_by_owner(
            org=access.org, user=request.user, confirm=request.POST.get("confirm", "")[:100]
        )
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
        return redirect("web:members")
    except PermissionDenied as exc:
        raise Http404("only the owner deletes the organization") from exc
    request.session.pop(SESSION_ORG_KEY, None)
    messages.success(
        request,
        f"{access.org.name} is deleted: nobody can use it any more, and its data is being "
        "erased in the background.",
    )
    return redirect("web:home")


@login_required
@require_POST
def invitation_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    access = _access_or_404(request)
    if not access.can_manage:
        raise Http404("only owners and admins revoke invitations")
    invitation = selectors.invitation_list(org=access.org).filter(pk=pk).first()
    if invitation is None:
        raise Http404("no such invitation")
    services.invitation_revoke(invitation=invitation, actor=request.user)
    messages.success(request, f"Invitation of {invitation.email} revoked.")
    return redirect("web:members")


def invitation(request: HttpRequest, secret: str) -> HttpResponse:
    found = services.invitation_open_get(secret=secret[:100])
    if found is None:
        return render(request, "web/invitation.html", {"invitation": None}, status=404)
    if request.method == "POST":
        try:
            if request.POST.get("action") == "signup" and not request.user.is_authenticated:
                password = request.POST.get("password", "")
                if password != request.POST.get("password2", ""):
                    raise ValidationError("the two passwords differ")
                user = services.user_sign_up(email=found.email, password=password)
                login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            if not request.user.is_authenticated:
                return redirect(f"{reverse('web:login')}?next={request.path}")
            services.invitation_accept(secret=secret, user=request.user)
        except ValidationError as exc:
            messages.error(request, "; ".join(exc.messages))
        else:
            # (the session's membership cache may catch up only on the next page)
            with contextlib.suppress(OrgNotFound):
                session_org_select(request, org_slug=found.org.slug)
            messages.success(request, f"Welcome to {found.org.name}.")
            return redirect("web:home")
    return render(
        request,
        "web/invitation.html",
        {
            "invitation": found,
            "email_matches": request.user.is_authenticated
            and (request.user.email or "").lower() == found.email.lower(),
        },
    )
