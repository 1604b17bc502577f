"""Open sign-up (``CANOPY_SIGNUP``): ``/signup`` asks for an email address and sends a link;
the link's page creates the account and its own organization. Off: both answer 404.

The first step answers the same whatever the address (an existing account gets a "you already
have an account" email instead of the link), so the form reveals no user; it is rate-limited
per client address and per email address (``services.signup_request``)."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.text import slugify

from backend.clientaddr import client_address
from backend.tenancy import services


def _enabled() -> None:
    if not settings.SIGNUP_ENABLED:
        raise Http404("sign-up is off on this server")


def signup(request: HttpRequest) -> HttpResponse:
    _enabled()
    if request.user.is_authenticated:
        return redirect("web:home")
    context: dict = {"email": ""}
    if request.method == "POST":
        email = request.POST.get("email", "")[:254]
        context["email"] = email
        try:
            services.signup_request(email=email, client_address=client_address(request))
        except ValidationError as exc:
            context["error"] = "; ".join(exc.messages)
            return render(request, "web/signup.html", context, status=400)
        except services.SignupThrottled as exc:
            context["error"] = str(exc)
            response = render(request, "web/signup.html", context, status=429)
            response["Retry-After"] = str(int(exc.retry_after) + 1)
            return response
        except PermissionDenied as exc:  # switched off meanwhile
            raise Http404("sign-up is off on this server") from exc
        return render(request, "web/signup.html", {"sent_to": email})
    return render(request, "web/signup.html", context)


def signup_finish(request: HttpRequest, token: str) -> HttpResponse:
    _enabled()
    email = services.signup_link_email(token=token)
    if email is None:
        return render(request, "web/signup_finish.html", {"email": None}, status=404)
    local = email.split("@", 1)[0]
    context = {
        "email": email,
        "org_name": request.POST.get("org_name", "")[:200],
        "org_slug": request.POST.get("org_slug", "")[:50] or slugify(local)[:50],
    }
    if request.method == "POST":
        password = request.POST.get("password", "")[:128]
        try:
            if password != request.POST.get("password2", "")[:128]:
                raise ValidationError("the two passwords differ")
            user, org = services.signup_complete(
                token=token,
                password=password,
                org_name=context["org_name"],
                org_slug=context["org_slug"],
            )
        except ValidationError as exc:
            context["error"] = "; ".join(exc.messages)
            return render(request, "web/signup_finish.html", context, status=400)
        except PermissionDenied as exc:
            raise Http404("sign-up is off on this server") from exc
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, f"Welcome to Canopy: {org.name} is yours.")
        return redirect("web:home")
    return render(request, "web/signup_finish.html", context)
