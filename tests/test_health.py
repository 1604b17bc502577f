import pytest


@pytest.mark.django_db
def test_healthz_and_readyz(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"postgres": "ok", "redis": "ok"}


def test_readyz_reports_a_dead_redis(client, db, settings):
    from django.core.cache import caches

    settings.CACHES = {
        **settings.CACHES,
        "default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"},
    }
    caches._settings = None
    try:
        response = client.get("/readyz")
    finally:
        caches._settings = None
    assert response.status_code == 503
    assert response.json()["checks"]["redis"].startswith("error")
