"""Canopy's URLs plus one view that fails with a secret in scope (the log test's 500)."""

from django.urls import path

from backend.urls import urlpatterns as canopy_urlpatterns


def boom(request):
    password = "hunter2-" + "s3cr3t-in-a-local"  # noqa: F841 - in the frame, as in a real fault
    token_secret = request.GET.get("t", "cnp_not-a-real-secret-but-looks-like-one")  # noqa: F841
    raise RuntimeError("a fault")


urlpatterns = [path("boom", boom), *canopy_urlpatterns]
