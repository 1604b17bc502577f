"""The trace search's helpers: the "go to trace" box takes the short ids the pages show (a unique
prefix opens its trace, several are listed, none is said plainly; bounded and org-scoped), and
the busiest service (most spans in the lookback) is what the search starts with. Spans sit both
in the head and in blocks, so both paths are read."""

import random
import time

import pytest
from django.db import connection
from django.urls import reverse

from backend.pipeline.drain import org_drain
from backend.tracing import storage
from backend.tracing.api.params import trace_id_hex
from backend.tracing.selectors import (
    _prefix_candidates,
    _prefix_mask,
    service_span_counts,
    traces_by_prefix,
)
from backend.tracing.storage.encoding import prefix_token, prefix_tokens
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


# --- the block summaries these helpers read (issue 17) -------------------------------------

MIN = 60 * 10**9


def _send_traces(client, token, traces, service="checkout") -> None:
    """Two spans per (trace hex, start), 1 µs apart, in one request."""
    spans = []
    for trace_hex, start in traces:
        for i in range(2):
            s = span(f"{i + 1:016x}", "" if i == 0 else "0000000000000001", start=start + i * 1000)
            s.trace_id = bytes.fromhex(trace_hex)
            spans.append(s)
    body = otlp_request(spans, service=service).SerializeToString()
    assert post_otlp(client, body, token).status_code == 200


def _forget_summaries(org_id: int) -> None:
    """Make the org's blocks look written before the summaries had counts and tokens."""
    with connection.cursor() as cur:
        cur.execute(
            "UPDATE trace_blocks SET service_counts = NULL, prefix_tokens = NULL WHERE org_id = %s",
            [org_id],
        )


def test_prefix_tokens_cover_every_prefix_of_the_shown_id():
    rng = random.Random(11)
    ids = [(bytes(8) if rng.random() < 0.3 else rng.randbytes(8)) + rng.randbytes(8)]
    ids += [rng.randbytes(16) for _ in range(30)] + [bytes(8) + rng.randbytes(8) for _ in range(30)]
    for trace_id in ids:
        shown = trace_id_hex(trace_id)
        tokens = set(prefix_tokens([trace_id]))
        for length in range(1, len(shown) + 1):
            token = prefix_token(shown[:length])
            assert token is None if length < 6 else token in tokens, (shown, length)
    # different leading digits, different tokens (what makes the index narrow)
    assert prefix_token("abcdef") != prefix_token("abcdee")
    assert prefix_token("abcdef") != prefix_token("abcdef0000000000")


@pytest.fixture
def many(client, tenants):
    """acme: 45 traces whose ids share a salt (they differ at their end only, like the bench's),
    15 random ones, 3 64-bit ones, over 3 hours in 3 drain rounds (several blocks); globex:
    the same ids, newer (a leak would list them first)."""
    now = time.time_ns()
    rng = random.Random(5)
    salted = [f"c0ffee00{'0' * 8}{k:016x}" for k in range(45)]
    rand = [rng.randbytes(16).hex() for _ in range(15)]
    short = [f"{'0' * 16}feedface{k:08x}" for k in range(3)]
    ids = salted + rand + short
    starts = {t: now - (3 * 60 - 2 * i) * MIN - rng.randrange(MIN // 2) for i, t in enumerate(ids)}
    acme = tenants.token(["traces:write"])
    globex = tenants.outsider_token(["traces:write"])
    for lo in range(0, len(ids), 21):
        part = ids[lo : lo + 21]
        _send_traces(client, acme, [(t, starts[t]) for t in part])
        org_drain(signal="traces", org_id=tenants.org.pk)
        _send_traces(client, globex, [(t, starts[t] + MIN) for t in part], service="vault")
        org_drain(signal="traces", org_id=tenants.other_org.pk)
    latest = {bytes.fromhex(t): s + 1000 for t, s in starts.items()}
    return tenants, latest, now


def _expected(latest, prefix, start, end, limit):
    hits = [
        (t, s)
        for t, s in latest.items()
        if trace_id_hex(t).startswith(prefix) and start <= s - 1000 and s <= end
    ]
    return sorted(hits, key=lambda h: -h[1])[:limit]


def test_prefix_lookup_from_blocks_matches_a_brute_force_and_stays_in_the_org(many):
    tenants, latest, now = many
    org = tenants.org.pk
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM trace_blocks WHERE org_id = %s", [org])
        assert cur.fetchone()[0] >= 3
    one = trace_id_hex(next(iter(latest)))
    cases = [
        ("c0ffee", now - 24 * 60 * MIN, now, 21),  # every salted trace: the newest 21
        ("c0ffee", now - 24 * 60 * MIN, now, 100),
        ("c0ffee00", now - 90 * MIN, now - 30 * MIN, 5),
        (one[:31], now - 24 * 60 * MIN, now, 21),  # unique, but for its last digit
        (one[:28], now - 24 * 60 * MIN, now, 21),
        ("c0ffee0000000000000000000000002", now - 24 * 60 * MIN, now, 21),  # 13 traces (0x20-0x2c)
        ("feedface", now - 24 * 60 * MIN, now, 21),  # 64-bit ids, as shown
        ("feedface00000002", now - 24 * 60 * MIN, now, 21),
        ("c0ff", now - 24 * 60 * MIN, now, 3),  # shorter than the index's tokens
        ("0000000000000000", now - 24 * 60 * MIN, now, 21),  # 64-bit ids show no zeros
        ("c0ffef", now - 24 * 60 * MIN, now, 21),  # none
    ]
    cases += [(t.hex()[:12], now - 24 * 60 * MIN, now, 21) for t in list(latest)[45:50]]
    answers = []
    for prefix, start, end, limit in cases:
        got = traces_by_prefix(org_id=org, prefix=prefix, start_ns=start, end_ns=end, limit=limit)
        assert got == _expected(latest, prefix, start, end, limit), prefix
        answers.append(got)
    assert len(answers[0]) == 21 and len(answers[5]) == 13 and len(answers[6]) == 3
    # the index: a prefix reads only the blocks that hold traces with its leading digits
    lone = trace_id_hex(list(latest)[50])  # a random id
    with connection.cursor() as cur:
        for length in (6, 8, 16, 31):
            assert len(_prefix_candidates(cur, org, lone[:length], now - 24 * 60 * MIN, now)) == 1
        assert not _prefix_candidates(cur, org, "c0ffef", now - 24 * 60 * MIN, now)
    # blocks from before the tokens (NULL) are read whole, with the same answers
    _forget_summaries(org)
    for (prefix, start, end, limit), before in zip(cases, answers, strict=True):
        got = traces_by_prefix(org_id=org, prefix=prefix, start_ns=start, end_ns=end, limit=limit)
        assert got == before, prefix


def test_busiest_services_from_block_summaries_match_the_decoded_blocks(client, tenants):
    now = time.time_ns()
    token = tenants.token(["traces:write"])
    rng = random.Random(3)
    sent = []
    for service, n in [("ledger", 14), ("cart", 9), ("search", 4)]:
        traces = [(rng.randbytes(16).hex(), now - rng.randrange(150 * MIN)) for _ in range(n)]
        _send_traces(client, token, traces, service=service)
        sent += [(service, s) for _, s in traces for s in (s, s + 1000)]
        org_drain(signal="traces", org_id=tenants.org.pk)
    windows = [(now - m * MIN, now) for m in (5, 45, 60, 90, 149, 24 * 60)]
    windows += [(now - 100 * MIN, now - 20 * MIN), (sent[0][1], sent[0][1])]
    answers = []
    for start, end in windows:
        counts: dict[str, int] = {}
        for service, s in sent:
            if start <= s <= end:
                counts[service] = counts.get(service, 0) + 1
        expected = sorted(counts.items(), key=lambda row: (-row[1], row[0]))
        got = service_span_counts(org_id=tenants.org.pk, start_ns=start, end_ns=end)
        assert got == expected, (start, end)
        answers.append(got)
    assert answers[-3][0] == ("ledger", 28)
    _forget_summaries(tenants.org.pk)
    for (start, end), before in zip(windows, answers, strict=True):
        assert service_span_counts(org_id=tenants.org.pk, start_ns=start, end_ns=end) == before
