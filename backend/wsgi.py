import os

from django.core.wsgi import get_wsgi_application

from backend.gc_tuning import settle_after_boot

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.settings")
application = get_wsgi_application()


def _warm_up() -> None:
    """Do now, while the worker boots, what Django and Celery would otherwise do lazily in the
    first requests (a remote-write sender's first push waited ~1 s for it in each worker):
    import every view, set up the Redis client and the Celery app that queues the ingest tasks
    (no network)."""
    from django.urls import get_resolver
    from django_redis import get_redis_connection

    from backend.celery import app

    get_resolver().url_patterns  # noqa: B018 (the property imports the URLconf)
    get_redis_connection("default")
    app.finalize(auto=True)
    app.connection_for_write().transport  # noqa: B018 (imports the broker's transport)
    app.amqp.producer_pool  # noqa: B018
    settle_after_boot()


_warm_up()
