"""Shared fixtures: every test gets an org with an owner, a member and a viewer, and an
outsider who owns another org, so isolation can be checked everywhere for free."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.core.cache import cache
from django_redis import get_redis_connection
from rest_framework.test import APIClient

from backend.metrics.series import series_ids_cache_clear
from backend.metrics.storage import block_cache, catalog
from backend.tenancy.models import Organization, Role, Scope
from backend.tenancy.selectors import caches_clear
from backend.tenancy.services import member_add, org_create, token_create, user_get_or_create
from backend.tracing import storage as trace_storage
from ingest.accept.metrics import metadata_seen_clear
from tests.helpers.credentials import PASSWORD


@dataclass
class Tenants:
    org: Organization
    other_org: Organization
    owner: object
    member: object
    viewer: object
    outsider: object

    def token(self, scopes, org: Organization | None = None, **kwargs) -> str:
        _, secret = token_create(org=org or self.org, name="test", scopes=scopes, **kwargs)
        return secret

    def outsider_token(self, scopes=(Scope.ADMIN,)) -> str:
        return self.token(scopes, org=self.other_org)


@pytest.fixture(autouse=True)
def _test_settings(settings):
    # Real hashing costs ~0.3 s a user; the hasher is Django's business, not ours.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Tests run without collectstatic: serve assets from the apps, without a manifest.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


def _clear_process_caches():
    """Per-process caches (tokens, limits, catalog ids) outlive the rows of a rolled-back or
    flushed test database."""
    caches_clear()
    catalog.caches_clear()
    block_cache.clear()
    trace_storage.caches_clear()
    series_ids_cache_clear()
    metadata_seen_clear()


@pytest.fixture(autouse=True)
def _clean_redis_state():
    # Start each test without rate-limit buckets, series counters or cached lockouts. Only
    # Canopy's own keys go: Celery's queues in the same Redis stay.
    cache.delete_pattern("*")
    _clear_process_caches()
    redis = get_redis_connection("default")
    keys = list(redis.scan_iter("canopy:*"))
    if keys:
        redis.delete(*keys)
    yield


@pytest.fixture
def tenants(db) -> Tenants:
    owner = user_get_or_create(username="owner", email="owner@example.com", password=PASSWORD)
    member = user_get_or_create(username="member", password=PASSWORD)
    viewer = user_get_or_create(username="viewer", password=PASSWORD)
    outsider = user_get_or_create(username="outsider", password=PASSWORD)
    org = org_create(slug="acme", name="Acme", owner=owner)
    member_add(org=org, user=member, role=Role.MEMBER, actor=owner)
    member_add(org=org, user=viewer, role=Role.VIEWER, actor=owner)
    other = org_create(slug="globex", name="Globex", owner=outsider)
    return Tenants(org, other, owner, member, viewer, outsider)


@pytest.fixture
def api() -> APIClient:
    return APIClient()


CELERY_QUEUES = ("ingest", "maintenance", "default", "rules")


@pytest.fixture(scope="session", autouse=True)
def _empty_task_queues(django_db_blocker):
    """Tests enqueue real Celery tasks into the Redis they are given; most have no worker to
    consume them. Start and end the run with Canopy's queues (and results cache) empty."""

    def purge():
        redis = get_redis_connection("default")
        redis.delete(*CELERY_QUEUES, "unacked", "unacked_index", "unacked_mutex")
        # The PromQL results cache is keyed by org id, and each run's fresh test database
        # gives out the same ids again: a previous run's entries must not answer this one's.
        stale = list(redis.scan_iter("promql:rc:*", count=1000))
        if stale:
            redis.delete(*stale)

    purge()
    yield
    purge()
