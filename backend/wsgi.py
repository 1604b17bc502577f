import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.settings")
application = get_wsgi_application()


def _import_views() -> None:
    """Import every view now, while the worker boots, rather than in its first requests:
    Django resolves the URLconf lazily, and a remote-write sender's first push would otherwise
    wait for a second or more of imports in each worker."""
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 (the property imports the URLconf)


_import_views()
