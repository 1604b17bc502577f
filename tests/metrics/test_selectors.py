"""Label matchers with Prometheus' semantics, over the catalog's postings."""

import pytest

from backend.metrics.labels import Matcher
from backend.metrics.storage.catalog import series_resolve
from backend.metrics.storage.reader import series_match

pytestmark = pytest.mark.django_db

SERIES = [
    (("__name__", "http_requests_total"), ("code", "200"), ("job", "api")),
    (("__name__", "http_requests_total"), ("code", "500"), ("job", "api")),
    (("__name__", "http_requests_total"), ("code", "200"), ("job", "web")),
    (("__name__", "up"), ("job", "api")),
    (("__name__", "up"), ("instance", "a:1"), ("job", "web")),
]


@pytest.fixture
def catalog(tenants):
    ids = series_resolve(
        org_id=tenants.org.pk, label_sets=SERIES, max_per_user=100, max_per_metric=100
    )
    # the same label sets in another org must never show up
    series_resolve(
        org_id=tenants.other_org.pk, label_sets=SERIES, max_per_user=100, max_per_metric=100
    )
    return dict(zip(ids, SERIES, strict=True))


def match(tenants, *matchers):
    found = series_match(org_id=tenants.org.pk, matchers=[Matcher(*m) for m in matchers])
    return sorted(tuple(sorted(labels.items())) for labels in found.values())


def expected(*indexes):
    return sorted(tuple(sorted(SERIES[i])) for i in indexes)


@pytest.mark.parametrize(
    ("matchers", "want"),
    [
        ([("__name__", "=", "http_requests_total")], [0, 1, 2]),
        ([("__name__", "=", "http_requests_total"), ("code", "!=", "200")], [1]),
        ([("__name__", "=~", "http_.*"), ("job", "=", "api")], [0, 1]),
        ([("code", "=~", "5..")], [1]),
        ([("code", "=~", "5")], []),  # fully anchored
        ([("job", "=", "web"), ("code", "!~", "2..")], [4]),
        ([("__name__", "=", "up"), ("instance", "=", "")], [3]),  # empty = absent
        ([("__name__", "=", "up"), ("instance", "!=", "")], [4]),
        ([("__name__", "=", "up"), ("instance", "=~", "|a:.*")], [3, 4]),
        ([("job", "=", "nope")], []),
        ([("__name__", "=~", "up|http_requests_total"), ("job", "=", "web")], [2, 4]),
        # != and !~ (a regex that cannot match "") exclude in SQL: absent labels pass
        ([("code", "!=", "200")], [1, 3, 4]),
        ([("code", "!=", "404")], [0, 1, 2, 3, 4]),  # no such pair: everything passes
        ([("job", "!=", "api"), ("code", "!=", "200")], [4]),
        ([("code", "!~", "2..|3..")], [1, 3, 4]),
        ([("code", "!~", "4..")], [0, 1, 2, 3, 4]),
        ([("code", "!~", "2..|")], [1]),  # matches "": absent labels fail, checked after
        ([("__name__", "!=", "up"), ("instance", "!~", "a:.*")], [0, 1, 2]),
    ],
)
def test_matchers(catalog, tenants, matchers, want):
    assert match(tenants, *matchers) == expected(*want)


def test_resolve_is_stable_and_isolated(catalog, tenants):
    again = series_resolve(
        org_id=tenants.org.pk, label_sets=SERIES, max_per_user=100, max_per_metric=100
    )
    assert again == list(catalog)
    other = series_resolve(
        org_id=tenants.other_org.pk, label_sets=SERIES, max_per_user=100, max_per_metric=100
    )
    assert not set(other) & set(catalog)


def test_a_series_created_meanwhile_by_another_request_resolves_to_its_id(tenants, monkeypatch):
    """Between the look-up and the insert another request may create the same series: the
    insert skips it and its id is read back."""
    from backend.metrics.storage import catalog

    labels = (("__name__", "raced"), ("job", "x"))
    admit = catalog._admit_new_series
    created = {}

    def admit_while_another_request_creates_it(org_id, label_sets, *args):
        monkeypatch.setattr(catalog, "_admit_new_series", admit)
        (created["id"],) = series_resolve(
            org_id=org_id, label_sets=[labels], max_per_user=100, max_per_metric=100
        )
        return admit(org_id, label_sets, *args)

    monkeypatch.setattr(catalog, "_admit_new_series", admit_while_another_request_creates_it)
    ids = series_resolve(
        org_id=tenants.org.pk, label_sets=[labels], max_per_user=100, max_per_metric=100
    )
    assert ids == [created["id"]] and created["id"] > 0


def test_series_of_one_label_and_without_a_name_are_created_too(tenants):
    # (the catalog's insert passes its columns as joined strings: a lone empty one must work)
    for label_sets in ([(("job", "x"),)], [(("__name__", "up"),)], [(("a", "1"),), (("b", "2"),)]):
        ids = series_resolve(
            org_id=tenants.org.pk, label_sets=label_sets, max_per_user=100, max_per_metric=100
        )
        assert all(i > 0 for i in ids)
        assert (
            series_resolve(
                org_id=tenants.org.pk, label_sets=label_sets, max_per_user=100, max_per_metric=100
            )
            == ids
        )
