"""The trace search's helpers: the "go to trace" box takes the short ids the pages show (a unique
prefix opens its trace, several are listed, none is said plainly; bounded and org-scoped), and
the busiest service (most spans in the lookback) is what the search starts with. Spans sit both
in the head and in blocks, so both paths are read."""

import random
import time

import pytest
from django.urls import reverse

from backend.pipeline.drain import org_drain
from backend.tracing import storage
from backend.tracing.api.params import trace_id_hex
from backend.tracing.selectors import _prefix_mask, service_span_counts, traces_by_prefix
from tests.helpers.credentials import bearer
from tests.helpers.otlp import otlp_request, post_otlp, span

pytestmark = pytest.mark.django_db
ACTIVITY = reverse("web:traces-service-activity")

T_HEAD = "abcdef01" + "11" * 12  # stays in the head
T_BLOCK = "abcdef02" + "22" * 12  # cut into a block
T_OTHER = "abcd9999" + "33" * 12
T_64 = "0" * 16 + "feedface12345678"  # a 64-bit id: the pages show "feedface12345678"
GLOBEX = "abcdef03" + "44" * 12


def _send(client, token, trace_hex: str, service: str, n: int, start: int) -> None:
    spans = []
    for i in range(n):
        s = span(f"{i + 1:016x}", "" if i == 0 else "0000000000000001", start=start + i * 1000)
        s.trace_id = bytes.fromhex(trace_hex)
        if i == 0:
            s.name = f"{service} root"
        spans.append(s)
    request = otlp_request(spans, service=service)
    assert post_otlp(client, request.SerializeToString(), token).status_code == 200


@pytest.fixture
def shop(client, tenants):
    now = time.time_ns()
    token = tenants.token(["traces:write"])
    _send(client, token, T_BLOCK, "ledger", 5, now - 20 * 60 * 10**9)
    # the drain writes blocks; the rest goes into the row head, as an upgrade finds rows
    assert storage.batches_drain_to_head(org_id=tenants.org.pk) == 5
    assert storage.blocks_cut(org_id=tenants.org.pk, before_ns=now, max_seq=2**62) == 5
    _send(client, token, T_HEAD, "checkout", 2, now - 60 * 10**9)
    _send(client, token, T_OTHER, "checkout", 1, now - 60 * 10**9)
    _send(client, token, T_64, "cart", 1, now - 60 * 10**9)
    assert storage.batches_drain_to_head(org_id=tenants.org.pk) == 4
    outsider = tenants.outsider_token(["traces:write"])
    _send(client, outsider, GLOBEX, "vault", 9, now - 60 * 10**9)
    org_drain(signal="traces", org_id=tenants.other_org.pk)
    return tenants


def _lookup(client, text: str):
    return client.get(reverse("web:traces"), {"trace": text})


def test_a_unique_prefix_opens_its_trace(client, shop):
    client.force_login(shop.member)
    for prefix, full in [
        ("abcdef01", T_HEAD),
        ("ABCDEF02", T_BLOCK),  # a trace in a block
        ("abcdef0222", T_BLOCK),
        ("abcd99", T_OTHER),
        ("feedface", "feedface12345678"),  # as a 64-bit id is shown
        (T_HEAD, T_HEAD),  # a whole id opens without a lookup
    ]:
        response = _lookup(client, prefix)
        assert response.status_code == 302, prefix
        assert response["Location"] == f"/traces/{full}?org=acme"


def test_several_matches_are_listed_to_choose_from(client, shop):
    client.force_login(shop.member)
    page = _lookup(client, "abcdef0")
    assert page.status_code == 200
    html = page.content.decode()
    assert "2 traces start with <code>abcdef0</code>" in html
    assert f'href="/traces/{T_HEAD}?org=acme"' in html
    assert f'href="/traces/{T_BLOCK}?org=acme"' in html
    assert "checkout root" in html and "ledger root" in html
    assert GLOBEX not in html  # another org's trace shares the prefix
    assert [m["id"] for m in page.context["trace_matches"]["items"]] == [T_HEAD, T_BLOCK]


def test_no_match_and_bad_input_say_so(client, shop):
    client.force_login(shop.member)
    none = _lookup(client, "abcdef09")
    assert none.status_code == 200
    assert "No trace with spans in the last 24 h has an ID starting with “abcdef09”" in (
        none.content.decode()
    )
    short = _lookup(client, "abcde")
    assert short.status_code == 200
    assert "too short: type at least 6 hex digits" in short.content.decode()
    bad = _lookup(client, "xyz123")
    assert "A trace ID is hexadecimal digits" in bad.content.decode()
    # 16 digits nobody's recent trace starts with: still a 64-bit trace id to open
    old = _lookup(client, "1234567890abcdef")
    assert old.status_code == 302 and old["Location"] == "/traces/1234567890abcdef?org=acme"


def test_the_prefix_lookup_stays_in_the_org(client, shop):
    client.force_login(shop.outsider)
    mine = _lookup(client, "abcdef0")
    assert mine.status_code == 302 and mine["Location"] == f"/traces/{GLOBEX}?org=globex"
    assert _lookup(client, "abcdef01").status_code == 200  # acme's: not found for globex
    assert _lookup(client, "abcdef01").context["trace_matches"] is None
    assert client.get(reverse("web:traces"), {"trace": "abcdef01", "org": "acme"}).status_code == (
        404
    )


def test_prefix_lookup_is_bounded_by_its_window(shop):
    now = time.time_ns()
    ids = [
        t
        for t, _ in traces_by_prefix(
            org_id=shop.org.pk, prefix="abcdef", start_ns=now - 30 * 60 * 10**9, end_ns=now, limit=5
        )
    ]
    assert ids == [bytes.fromhex(T_HEAD), bytes.fromhex(T_BLOCK)]
    recent = traces_by_prefix(
        org_id=shop.org.pk, prefix="abcdef", start_ns=now - 5 * 60 * 10**9, end_ns=now, limit=5
    )
    assert [t for t, _ in recent] == [bytes.fromhex(T_HEAD)]
    assert (
        len(traces_by_prefix(org_id=shop.org.pk, prefix="abcdef", start_ns=0, end_ns=now, limit=1))
        == 1
    )
    with pytest.raises(ValueError):
        traces_by_prefix(org_id=shop.org.pk, prefix="abc%", start_ns=0, end_ns=now, limit=5)


def test_the_vectorized_prefix_match_agrees_with_the_displayed_ids():
    rng = random.Random(7)
    ids = [
        (bytes(8) if rng.random() < 0.3 else rng.randbytes(8)) + rng.randbytes(8)
        for _ in range(400)
    ]
    ids += [bytes.fromhex(T_64), bytes.fromhex("ab" * 16), bytes.fromhex("ab" * 8 + "cd" * 8)]
    shown = [trace_id_hex(t) for t in ids]
    prefixes = ["ab", "abab", "ababababababababc", "f", "0", "feedface1"]
    prefixes += [rng.choice(shown)[: rng.randint(1, 32)] for _ in range(200)]
    for prefix in prefixes:
        mask = _prefix_mask(b"".join(ids), prefix)
        assert mask.tolist() == [h.startswith(prefix) for h in shown], prefix


def test_busiest_services_count_head_and_blocks(shop):
    now = time.time_ns()
    counts = service_span_counts(org_id=shop.org.pk, start_ns=now - 3600 * 10**9, end_ns=now)
    assert counts == [("ledger", 5), ("checkout", 3), ("cart", 1)]
    recent = service_span_counts(org_id=shop.org.pk, start_ns=now - 5 * 60 * 10**9, end_ns=now)
    assert recent == [("checkout", 3), ("cart", 1)]


def test_the_activity_endpoint_answers_for_the_viewers_org_only(client, api, shop):
    client.force_login(shop.member)
    answer = client.get(ACTIVITY, {"lookback": "1h"})
    assert answer.status_code == 200
    assert answer.json() == {
        "data": [
            {"service": "ledger", "spans": 5},
            {"service": "checkout", "spans": 3},
            {"service": "cart", "spans": 1},
        ],
        "lookback": "1h",
    }
    assert client.get(ACTIVITY, {"lookback": "15m"}).json()["data"][0]["service"] == "checkout"
    bad = client.get(ACTIVITY, {"lookback": "2y"})
    assert bad.status_code == 400 and "lookback" in bad.json()
    client.force_login(shop.outsider)
    assert client.get(ACTIVITY, {"org": "acme"}).status_code == 404
    assert client.get(ACTIVITY).json()["data"] == [{"service": "vault", "spans": 9}]
    # tokens: traces:read of the token's own org
    reader = shop.token(["traces:read"])
    assert api.get(ACTIVITY, **bearer(reader)).json()["data"][0]["service"] == "ledger"
    writer = shop.token(["traces:write"])
    assert api.get(ACTIVITY, **bearer(writer)).status_code == 403
    outsider = shop.outsider_token(["traces:read"])
    theirs = api.get(ACTIVITY, {"org": "acme"}, **bearer(outsider))  # a token acts for its org
    assert theirs.json()["data"] == [{"service": "vault", "spans": 9}]


def test_the_search_page_asks_for_the_busiest_service(client, shop):
    client.force_login(shop.member)
    html = client.get(reverse("web:traces")).content.decode()
    assert f'data-activity="{ACTIVITY}"' in html
    assert 'id="service-hint"' in html
