import gc
import os

from django.core.wsgi import get_wsgi_application

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
    # What booting created lives as long as the worker: keep it out of the garbage collector's
    # full passes, which otherwise walk all of it again and again (100+ ms each).
    gc.freeze()
    # A request makes thousands of short-lived objects (a trace export: a span object each),
    # freed by reference counting; with the default threshold (700 allocations) the young
    # generation is collected a dozen times per such request for nothing (~0.8 CPU-us per
    # span, bench/traces_ingest.py). The older generations keep their defaults.
    gc.set_threshold(10_000, *gc.get_threshold()[1:])


_warm_up()
