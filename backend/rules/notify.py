"""Sending alerts: Alertmanager's v2 API (``POST /api/v2/alerts``) and plain webhooks.

An evaluation that has alerts to send queues one :class:`Notification` row per target, in
the evaluation's transaction; the delivery task posts it once committed. A failed post is
retried with exponential backoff (1 s, 2 s, 4 s … at most 5 min apart) up to
``MAX_ATTEMPTS`` times, and every failure is recorded in :class:`DeliveryStatus`, which the
targets API and the Alerts page show the tenant.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import urllib.parse

import requests
from celery import current_app
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from backend.rules.models import AlertingConfig, DeliveryStatus, Notification

DELIVER_TASK = "backend.rules.tasks.deliver_notification"
MAX_ATTEMPTS = 8
MAX_BACKOFF_SECONDS = 300
TIMEOUT_SECONDS = 10
MAX_TARGETS = 10
MAX_URL_LENGTH = 2048
LOST_AFTER = dt.timedelta(seconds=30)


class TargetsInvalid(ValueError):
    pass


def target_refusal(url: str) -> str | None:
    """Why a target URL may not be posted to, or None. Unless the operator allows it
    (``CANOPY_ALERTING_PRIVATE_TARGETS``), every address the host resolves to must be a public
    one: no loopback, private, link-local (cloud metadata) or reserved address. Checked when
    targets are saved and again before each post (a name may resolve elsewhere later)."""
    if settings.ALERTING_PRIVATE_TARGETS:
        return None
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(parts.hostname, port, proto=socket.IPPROTO_TCP)
    except (OSError, ValueError, UnicodeError) as exc:
        return f"its host does not resolve ({exc.__class__.__name__})"
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
        if not address.is_global:
            return f"its host resolves to a non-public address ({address})"
    return None


def _url(value, where: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_URL_LENGTH:
        raise TargetsInvalid(f"{where}.url: a URL of at most {MAX_URL_LENGTH} characters")
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetsInvalid(f"{where}.url: must be an http:// or https:// URL with a host")
    refusal = target_refusal(value)
    if refusal:
        raise TargetsInvalid(f"{where}.url: refused, {refusal}")
    return value


def targets_clean(data) -> dict:
    """The targets document, validated and normalised, or :class:`TargetsInvalid`."""
    if not isinstance(data, dict):
        raise TargetsInvalid("expected an object with 'alertmanagers' and/or 'webhooks'")
    unknown = set(data) - {"alertmanagers", "webhooks"}
    if unknown:
        raise TargetsInvalid(f"unknown field(s): {', '.join(sorted(unknown))}")
    out: dict[str, list] = {"alertmanagers": [], "webhooks": []}
    for kind in ("alertmanagers", "webhooks"):
        items = data.get(kind) or []
        if not isinstance(items, list) or len(items) > MAX_TARGETS:
            raise TargetsInvalid(f"{kind}: a list of at most {MAX_TARGETS} targets")
        for i, item in enumerate(items):
            where = f"{kind}[{i}]"
            if not isinstance(item, dict):
                raise TargetsInvalid(f"{where}: expected an object")
            extra = set(item) - {"url", "bearer_token", "basic_auth"}
            if extra:
                raise TargetsInvalid(f"{where}: unknown field(s): {', '.join(sorted(extra))}")
            clean = {"url": _url(item.get("url"), where)}
            if item.get("bearer_token") and item.get("basic_auth"):
                raise TargetsInvalid(f"{where}: give bearer_token or basic_auth, not both")
            if item.get("bearer_token") is not None:
                if not isinstance(item["bearer_token"], str) or len(item["bearer_token"]) > 4096:
                    raise TargetsInvalid(f"{where}.bearer_token: a string")
                clean["bearer_token"] = item["bearer_token"]
            if item.get("basic_auth") is not None:
                auth = item["basic_auth"]
                if (
                    not isinstance(auth, dict)
                    or set(auth) - {"username", "password"}
                    or not isinstance(auth.get("username"), str)
                    or not isinstance(auth.get("password", ""), str)
                ):
                    raise TargetsInvalid(
                        f"{where}.basic_auth: an object with 'username' and 'password'"
                    )
                clean["basic_auth"] = {
                    "username": auth["username"],
                    "password": auth.get("password", ""),
                }
            out[kind].append(clean)
    return out


def targets_public(targets: dict) -> dict:
    """The targets without their secrets (what GET answers)."""
    out: dict[str, list] = {}
    for kind in ("alertmanagers", "webhooks"):
        out[kind] = []
        for item in targets.get(kind) or []:
            shown = {"url": item["url"]}
            if item.get("bearer_token"):
                shown["bearer_token"] = "<secret>"
            if item.get("basic_auth"):
                shown["basic_auth"] = {
                    "username": item["basic_auth"]["username"],
                    "password": "<secret>",
                }
            out[kind].append(shown)
    return out


def _endpoint(kind: str, url: str) -> str:
    if kind == "alertmanagers" and not url.rstrip("/").endswith("/api/v2/alerts"):
        return url.rstrip("/") + "/api/v2/alerts"
    return url


def notifications_queue(*, org_id: int, config: AlertingConfig, alerts: list[dict]) -> list[int]:
    """One row per target with the alerts to send; the delivery task runs after commit."""
    now = timezone.now()
    rows = [
        Notification(
            org_id=org_id,
            target_url=_endpoint(kind, item["url"]),
            payload={"alerts": alerts, "kind": kind},
            next_attempt_at=now,
        )
        for kind in ("alertmanagers", "webhooks")
        for item in (config.targets or {}).get(kind) or []
    ]
    if not rows:
        return []
    created = Notification.objects.for_org(org_id).bulk_create(rows)
    ids = [n.pk for n in created]

    def enqueue() -> None:
        # By name: the tasks module imports this one. The org goes with the id, so that the
        # delivery's statements name it (docs/scaling.md).
        for pk in ids:
            current_app.send_task(DELIVER_TASK, args=(pk, org_id))

    transaction.on_commit(enqueue)
    return ids


def _credentials(config: AlertingConfig, target_url: str) -> dict:
    for kind in ("alertmanagers", "webhooks"):
        for item in (config.targets or {}).get(kind) or []:
            if _endpoint(kind, item["url"]) == target_url:
                return item
    return {}


def _post(n: Notification, headers: dict, auth) -> str:
    """Post a notification's alerts; the error ("" when it was taken)."""
    refusal = target_refusal(n.target_url)
    if refusal:
        return f"refused, {refusal}"
    try:
        response = requests.post(
            n.target_url,
            json=n.payload["alerts"],
            headers=headers,
            auth=auth,
            timeout=TIMEOUT_SECONDS,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        return f"{exc.__class__.__name__}: {str(exc)[:300]}"
    if not 200 <= response.status_code < 300:
        return f"HTTP {response.status_code}: {response.text[:300].strip()}"
    return ""


def notification_org_id(*, notification_id: int) -> int | None:
    """The org of a notification known by its id alone (None: gone). Only for a task queued
    before the org went along with the id; a look-up by bare id, multi-shard once
    distributed."""
    return (
        Notification.objects.unscoped()
        .filter(pk=notification_id)
        .values_list("org_id", flat=True)
        .first()
    )


def notification_deliver(*, notification_id: int, org_id: int | None = None) -> str:
    """Post one queued notification: ``"sent"``, ``"retry"`` (kept, with its next attempt),
    ``"dropped"`` (out of attempts, or its target was removed) or ``"gone"``. ``org_id`` None:
    a task queued before the org went with the id (looked up once). Every statement on the
    notification names the org (``for_org``), not ``save()``/``delete()``'s ``WHERE id = …``."""
    if org_id is None:
        org_id = notification_org_id(notification_id=notification_id)
        if org_id is None:
            return "gone"
    mine = Notification.objects.for_org(org_id).filter(pk=notification_id)
    with transaction.atomic():
        n = mine.select_for_update(skip_locked=True).first()
        if n is None:
            return "gone"
        if n.next_attempt_at > timezone.now():
            return "not-due"  # a second hand-out of the same retry (beat ticks every second)
        config = AlertingConfig.objects.for_org(org_id).first()
        target = _credentials(config, n.target_url) if config else {}
        if not target:
            mine.delete()
            return "dropped"
        headers = {"Content-Type": "application/json", "User-Agent": "Canopy-ruler"}
        auth = None
        if target.get("bearer_token"):
            headers["Authorization"] = f"Bearer {target['bearer_token']}"
        elif target.get("basic_auth"):
            auth = (target["basic_auth"]["username"], target["basic_auth"]["password"])
        error = _post(n, headers, auth)
        status, _ = DeliveryStatus.objects.for_org(org_id).get_or_create(
            org_id=org_id, target_url=n.target_url
        )
        now = timezone.now()
        if not error:
            DeliveryStatus.objects.for_org(org_id).filter(pk=status.pk).update(
                last_success_at=now, sent_alerts=F("sent_alerts") + len(n.payload["alerts"])
            )
            mine.delete()
            return "sent"
        DeliveryStatus.objects.for_org(org_id).filter(pk=status.pk).update(
            last_error_at=now, last_error=error, failed_attempts=F("failed_attempts") + 1
        )
        attempts = n.attempts + 1
        if attempts >= MAX_ATTEMPTS:
            mine.delete()
            return "dropped"
        mine.update(
            attempts=attempts,
            last_error=error,
            next_attempt_at=now
            + dt.timedelta(seconds=min(2 ** (attempts - 1), MAX_BACKOFF_SECONDS)),
        )
        return "retry"


def notifications_due(*, limit: int = 500) -> list[tuple[int, int]]:
    """(org id, notification id) of the retries whose time has come, and of first sends whose
    task was lost (queued more than ``LOST_AFTER`` ago and never tried), of every org: a
    maintenance read. A row is handed out once per attempt time (a Redis flag), not at every
    beat tick."""
    now = timezone.now()
    rows = (
        Notification.objects.unscoped()
        .filter(next_attempt_at__lte=now)
        .filter(Q(attempts__gt=0) | Q(created_at__lte=now - LOST_AFTER))
        .order_by("next_attempt_at")
        .values_list("org_id", "pk", "next_attempt_at")[:limit]
    )
    return [
        (org_id, pk)
        for org_id, pk, at in rows
        if cache.add(f"rules:notify:{pk}:{at.timestamp()}", 1, timeout=MAX_BACKOFF_SECONDS)
    ]
