"""Writes of the tenancy domain. Keyword-only; every change to an org is audited."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

import structlog
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.auth.password_validation import validate_password
from django.core import signing
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.core.validators import EmailValidator
from django.db import IntegrityError, ProgrammingError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from django_redis import get_redis_connection
from psycopg import sql

from backend.tenancy.models import (
    ALL_SCOPES,
    DISPLAY_PREFIX_LENGTH,
    TENANT_LIMIT_FIELDS,
    ApiToken,
    AuditEvent,
    Invitation,
    Membership,
    Organization,
    OrgDeletion,
    OrgLimits,
    Role,
    generate_token_secret,
    hash_token,
)
from backend.tenancy.ratelimit import bucket_take

User = get_user_model()
logger = structlog.get_logger(__name__)

# last_used_at is a hint for humans ("used 3 minutes ago"), not an access log: write it at most
# once a minute per token so authentication does not turn every request into an UPDATE.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def audit_record(
    *,
    org: Organization,
    action: str,
    target: str = "",
    actor=None,
    details: dict | None = None,
) -> AuditEvent:
    """``actor`` is a user, a token principal (anything with ``.token``) or None."""
    token = getattr(actor, "token", None)
    user = actor if token is None and actor is not None and actor.is_authenticated else None
    return AuditEvent.objects.for_org(org).create(
        org=org, actor=user, actor_token=token, action=action, target=target, details=details or {}
    )


def org_create(*, slug: str, name: str, owner: AbstractBaseUser) -> Organization:
    with transaction.atomic():
        org = Organization(slug=slug, name=name)
        org.full_clean()
        org.save()
        Membership.objects.for_org(org).create(org=org, user=owner, role=Role.OWNER)
        OrgLimits.objects.for_org(org).create(org=org)  # the operator's to change (admin)
        audit_record(org=org, actor=owner, action="org.create", target=slug)
    return org


def _clean_scopes(scopes: Iterable[str]) -> list[str]:
    scopes = sorted(set(scopes))
    unknown = [s for s in scopes if s not in ALL_SCOPES]
    if unknown:
        raise ValidationError(f"unknown scope(s): {', '.join(unknown)}")
    if not scopes:
        raise ValidationError("a token needs at least one scope")
    return scopes


def token_create(
    *,
    org: Organization,
    name: str,
    scopes: Iterable[str],
    created_by: AbstractBaseUser | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiToken, str]:
    """Create a token; returns it with its secret, which is never stored and never shown again."""
    # Checked before the secret exists, so that no error path can carry it.
    name_limit = ApiToken._meta.get_field("name").max_length
    if not name or len(name) > name_limit or any(ord(c) < 32 for c in name):
        raise ValidationError(
            f"A token name is 1 to {name_limit} characters, without control characters."
        )
    secret = generate_token_secret()
    token = ApiToken.objects.for_org(org).create(
        org=org,
        name=name,
        prefix=secret[:DISPLAY_PREFIX_LENGTH],
        secret_hash=hash_token(secret),
        scopes=_clean_scopes(scopes),
        created_by=created_by if isinstance(created_by, User) else None,
        expires_at=expires_at,
    )
    audit_record(
        org=org,
        actor=created_by,
        action="token.create",
        target=token.prefix,
        details={"name": name, "scopes": token.scopes},
    )
    return token, secret


def token_revoke(*, token: ApiToken, actor: AbstractBaseUser | None = None) -> ApiToken:
    # Compare-and-set: two concurrent revocations record one revocation time and one audit row.
    now = timezone.now()
    updated = (
        ApiToken.objects.for_org(token.org_id)
        .filter(pk=token.pk, revoked_at__isnull=True)
        .update(revoked_at=now)
    )
    if updated:
        from backend.tenancy.selectors import caches_clear

        caches_clear()  # this process at once; others within TOKEN_CACHE_SECONDS
        token.revoked_at = now
        audit_record(org=token.org, actor=actor, action="token.revoke", target=token.prefix)
    else:
        token.refresh_from_db(fields=["revoked_at"])
    return token


def token_touch(*, token: ApiToken, now: datetime | None = None) -> None:
    """Record use, at most once per LAST_USED_RESOLUTION per token across all processes."""
    now = now or timezone.now()
    if token.last_used_at and now - token.last_used_at < LAST_USED_RESOLUTION:
        return
    # The cache key is only a cheap gate before the UPDATE; the WHERE clause is the real guard.
    if not cache.add(f"token-touch:{token.pk}", 1, timeout=LAST_USED_RESOLUTION.total_seconds()):
        return
    stale = Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
    ApiToken.objects.for_org(token.org_id).filter(stale, pk=token.pk).update(last_used_at=now)
    token.last_used_at = now


def member_add(
    *, org: Organization, user: AbstractBaseUser, role: str, actor: AbstractBaseUser | None
) -> Membership:
    if role not in Role.values:
        raise ValidationError(f"unknown role {role!r}")
    membership, created = Membership.objects.for_org(org).get_or_create(
        org=org, user=user, defaults={"role": role}
    )
    if not created:
        raise ValidationError(f"{user.get_username()} is already a member")
    audit_record(
        org=org,
        actor=actor,
        action="member.add",
        target=user.get_username(),
        details={"role": role},
    )
    return membership


def _ensure_an_owner_remains(membership: Membership, new_role: str | None) -> None:
    if membership.role != Role.OWNER or new_role == Role.OWNER:
        return
    owners = Membership.objects.for_org(membership.org_id).filter(role=Role.OWNER)
    if not owners.exclude(pk=membership.pk).exists():
        raise ValidationError("an organization must keep at least one owner")


def member_change_role(
    *, membership: Membership, role: str, actor: AbstractBaseUser | None
) -> Membership:
    if role not in Role.values:
        raise ValidationError(f"unknown role {role!r}")
    with transaction.atomic():
        # Lock the org's owner rows so two admins cannot demote the last two owners at once.
        list(
            Membership.objects.for_org(membership.org_id)
            .filter(role=Role.OWNER)
            .select_for_update()
        )
        _ensure_an_owner_remains(membership, role)
        old = membership.role
        membership.role = role
        membership.save(update_fields=["role"])
        audit_record(
            org=membership.org,
            actor=actor,
            action="member.change_role",
            target=membership.user.get_username(),
            details={"from": old, "to": role},
        )
    return membership


def member_remove(*, membership: Membership, actor: AbstractBaseUser | None) -> None:
    with transaction.atomic():
        list(
            Membership.objects.for_org(membership.org_id)
            .filter(role=Role.OWNER)
            .select_for_update()
        )
        _ensure_an_owner_remains(membership, None)
        username = membership.user.get_username()
        membership.delete()
        audit_record(org=membership.org, actor=actor, action="member.remove", target=username)


def user_get_or_create(*, username: str, email: str = "", password: str | None = None):
    user, created = User.objects.get_or_create(username=username, defaults={"email": email})
    if password is not None and (created or not user.check_password(password)):
        user.set_password(password)
        user.save(update_fields=["password"])
    return user


def limits_update_by_tenant(*, org: Organization, changes: dict, actor=None) -> OrgLimits:
    """What an org admin may change of its limits: retention, within the plan's bounds. The
    quotas that protect the other tenants are refused (PermissionDenied): they are the
    operator's (``limits_update``)."""
    operator_owned = sorted(set(changes) - set(TENANT_LIMIT_FIELDS))
    if operator_owned:
        raise PermissionDenied(
            f"{', '.join(operator_owned)}: set by the platform operator (the Django admin or "
            "`manage.py set_limits`); an org admin may change "
            f"{', '.join(TENANT_LIMIT_FIELDS)} only"
        )
    current = OrgLimits.objects.for_org(org).get_or_create(org=org)[0]
    for field, value in changes.items():
        bound = getattr(current, TENANT_LIMIT_FIELDS[field])
        if not 1 <= value <= bound:
            raise ValidationError(f"{field} must be between 1 and {bound} (the plan's bound)")
    return limits_update(org=org, changes=changes, actor=actor)


def limits_update(*, org: Organization, changes: dict, actor=None) -> OrgLimits:
    """Any limit, for the operator (admin, ``set_limits``): validated and audited."""
    from backend.tenancy.selectors import caches_clear

    limits, _ = OrgLimits.objects.for_org(org).get_or_create(org=org)
    before = {field: getattr(limits, field) for field in changes}
    for field, value in changes.items():
        setattr(limits, field, value)
    limits.full_clean(validate_unique=False)  # uniqueness: one row per org, by get_or_create
    limits.save()
    caches_clear()
    audit_record(
        org=org, actor=actor, action="limits.update", details={"from": before, "to": changes}
    )
    return limits


# -- invitations ------------------------------------------------------------------------------


def _invitation_hash(secret: str) -> str:
    return hash_token(secret)


def invitation_create(
    *, org: Organization, email: str, role: str, actor=None
) -> tuple[Invitation, str]:
    """Invite an email address; returns the invitation and the link's secret (sent by email,
    never stored). The answer is the same whether or not the address has an account."""
    if role not in Role.values:
        raise ValidationError(f"unknown role {role!r}")
    email = (email or "").strip()
    try:
        EmailValidator()(email)
    except ValidationError:
        raise ValidationError("enter a valid email address") from None
    email = User.objects.normalize_email(email)
    secret = secrets.token_urlsafe(32)
    invitation = Invitation.objects.for_org(org).create(
        org=org,
        email=email,
        role=role,
        secret_hash=_invitation_hash(secret),
        created_by=actor if isinstance(actor, User) else None,
        expires_at=timezone.now() + timedelta(seconds=settings.INVITATION_TTL_SECONDS),
    )
    audit_record(
        org=org, actor=actor, action="invitation.create", target=email, details={"role": role}
    )
    link = f"{settings.PUBLIC_URL}/invitations/{secret}"
    send_mail(
        subject=f"You are invited to {org.name} on Canopy",
        message=(
            f"You are invited to join {org.name} on Canopy as {role}.\n\n"
            f"Accept: {link}\n\nThe link works once and expires on "
            f"{invitation.expires_at:%Y-%m-%d %H:%M} UTC.\n"
        ),
        from_email=None,
        recipient_list=[email],
        fail_silently=False,
    )
    return invitation, secret


def invitation_open_get(*, secret: str) -> Invitation | None:
    """The open invitation of this link's secret, or None (unknown, used, revoked, expired)."""
    invitation = (
        Invitation.objects.unscoped()
        .select_related("org")
        .filter(secret_hash=_invitation_hash(secret))
        .first()
    )
    return invitation if invitation is not None and invitation.is_open() else None


def invitation_accept(*, secret: str, user: AbstractBaseUser) -> Membership:
    """The invitee joins: signed in with the invited email address, once."""
    invitation = invitation_open_get(secret=secret)
    if invitation is None:
        raise ValidationError("this invitation is not valid any more")
    if (user.email or "").lower() != invitation.email.lower():
        raise ValidationError(
            "this invitation is for another email address: sign in with the invited one"
        )
    with transaction.atomic():
        # Compare-and-set: two clicks on the link accept once.
        claimed = (
            Invitation.objects.for_org(invitation.org)
            .filter(pk=invitation.pk, accepted_at=None, revoked_at=None)
            .update(accepted_at=timezone.now(), accepted_by=user)
        )
        if not claimed:
            raise ValidationError("this invitation is not valid any more")
        existing = Membership.objects.for_org(invitation.org).filter(user=user).first()
        if existing is not None:
            return existing
        return member_add(org=invitation.org, user=user, role=invitation.role, actor=user)


def invitation_revoke(*, invitation: Invitation, actor=None) -> Invitation:
    Invitation.objects.for_org(invitation.org_id).filter(pk=invitation.pk, revoked_at=None).update(
        revoked_at=timezone.now()
    )
    invitation.refresh_from_db()
    audit_record(
        org=invitation.org, actor=actor, action="invitation.revoke", target=invitation.email
    )
    return invitation


def user_sign_up(*, email: str, password: str) -> AbstractBaseUser:
    """An account for an invitee (username = email), through an open invitation for that
    email: always possible, whether or not open sign-up (``CANOPY_SIGNUP``) is on."""
    email = User.objects.normalize_email(email)
    validate_password(password)
    if User.objects.filter(Q(username__iexact=email) | Q(email__iexact=email)).exists():
        raise ValidationError("an account with this email address exists: sign in instead")
    return User.objects.create_user(username=email, email=email, password=password)


# -- open sign-up (CANOPY_SIGNUP) ---------------------------------------------------------------

SIGNUP_LINK_MAX_AGE_SECONDS = 24 * 3600
_SIGNUP_SALT = "canopy.tenancy.signup"
# Sign-up requests (each sends an email): per client address and per email address, a token
# bucket of this many at once, refilled at this many an hour.
SIGNUP_BURST_PER_ADDRESS = 10
SIGNUP_PER_HOUR_PER_ADDRESS = 10
SIGNUP_BURST_PER_EMAIL = 3
SIGNUP_PER_HOUR_PER_EMAIL = 3


class SignupThrottled(Exception):
    def __init__(self, retry_after: float):
        super().__init__(f"too many sign-up requests: try again in {int(retry_after) + 1} s")
        self.retry_after = retry_after


def _email_exists(email: str) -> bool:
    return User.objects.filter(Q(username__iexact=email) | Q(email__iexact=email)).exists()


def signup_request(*, email: str, client_address: str) -> None:
    """Open sign-up, step 1: email a link to continue. The caller's answer is the same whether
    or not the address has an account (that one gets a "you already have an account" email
    instead), so the form tells nobody which addresses exist here."""
    if not settings.SIGNUP_ENABLED:
        raise PermissionDenied("sign-up is off on this server")
    email = (email or "").strip()[:254]
    try:
        EmailValidator()(email)
    except ValidationError:
        raise ValidationError("enter a valid email address") from None
    email = User.objects.normalize_email(email)
    email_key = hash_token(email.lower())[:32]
    buckets = (
        (f"addr:{client_address[:64]}", SIGNUP_BURST_PER_ADDRESS, SIGNUP_PER_HOUR_PER_ADDRESS),
        (f"email:{email_key}", SIGNUP_BURST_PER_EMAIL, SIGNUP_PER_HOUR_PER_EMAIL),
    )
    for key, burst, per_hour in buckets:
        verdict = bucket_take(key=f"signup:{key}", rate=per_hour / 3600, burst=burst, cost=1)
        if not verdict.allowed:
            raise SignupThrottled(verdict.retry_after)
    if _email_exists(email):
        send_mail(
            subject="Your Canopy account",
            message=(
                "Someone (you, we hope) asked to create a Canopy account with this address, but"
                f" it already has one. Sign in at {settings.PUBLIC_URL}/login/ .\n\n"
                "If it was not you, ignore this email."
            ),
            from_email=None,
            recipient_list=[email],
        )
        return
    token = signing.dumps({"email": email}, salt=_SIGNUP_SALT, compress=True)
    send_mail(
        subject="Create your Canopy account",
        message=(
            "Continue creating your Canopy account and organization:\n\n"
            f"{settings.PUBLIC_URL}/signup/{token}\n\n"
            f"The link works for {SIGNUP_LINK_MAX_AGE_SECONDS // 3600} hours. If you did not"
            " ask for it, ignore this email."
        ),
        from_email=None,
        recipient_list=[email],
    )


def signup_link_email(*, token: str) -> str | None:
    """The email address a sign-up link was sent to, or None when it is not (any more) valid."""
    try:
        data = signing.loads(token[:1000], salt=_SIGNUP_SALT, max_age=SIGNUP_LINK_MAX_AGE_SECONDS)
    except signing.BadSignature:  # SignatureExpired is one
        return None
    email = data.get("email") if isinstance(data, dict) else None
    return email if isinstance(email, str) else None


def signup_complete(
    *, token: str, password: str, org_name: str, org_slug: str
) -> tuple[AbstractBaseUser, Organization]:
    """Open sign-up, step 2 (from the emailed link): the account (username = email) and its
    own organization, of which it is the owner."""
    if not settings.SIGNUP_ENABLED:
        raise PermissionDenied("sign-up is off on this server")
    email = signup_link_email(token=token)
    if email is None:
        raise ValidationError("this sign-up link is not valid any more: ask for a new one")
    validate_password(password)
    if _email_exists(email):
        raise ValidationError("an account with this email address exists: sign in instead")
    with transaction.atomic():
        user = User.objects.create_user(username=email, email=email, password=password)
        try:
            org = org_create(
                slug=(org_slug or "").strip()[:50], name=(org_name or "").strip()[:200], owner=user
            )
        except ValidationError as exc:
            raise ValidationError(exc.messages) from None
    return user, org


def org_create_for_owner_email(
    *, slug: str, name: str, owner_email: str
) -> tuple[Organization, str]:
    """The operator's ``create_org``: the org, its limits, and an owner invitation (whose link
    is returned, and emailed)."""
    with transaction.atomic():
        org = Organization(slug=slug, name=name)
        org.full_clean()
        org.save()
        OrgLimits.objects.for_org(org).create(org=org)
        audit_record(org=org, action="org.create", target=slug, details={"by": "operator"})
        _, secret = invitation_create(org=org, email=owner_email, role=Role.OWNER)
    return org, f"{settings.PUBLIC_URL}/invitations/{secret}"


# -- deleting an org ---------------------------------------------------------------------------


def org_delete_request(*, org: Organization, actor=None) -> OrgDeletion:
    """Close the org at once (members removed, tokens and invitations revoked: nobody reads
    or writes it any more) and record the deletion; ``tenancy.tasks.purge_deleted_orgs``
    deletes its data in the background (queued as soon as this commits; beat also runs it
    every minute)."""
    now = timezone.now()
    with transaction.atomic():
        ApiToken.objects.for_org(org).filter(revoked_at=None).update(revoked_at=now)
        Invitation.objects.for_org(org).filter(revoked_at=None).update(revoked_at=now)
        Membership.objects.for_org(org).delete()
        audit_record(org=org, actor=actor, action="org.delete", target=org.slug)
        deletion = OrgDeletion.objects.create(
            deleted_org=org.pk,
            slug=org.slug,
            requested_by=actor if isinstance(actor, User) else None,
        )
        transaction.on_commit(_purge_soon)
    from backend.tenancy.selectors import caches_clear

    caches_clear()  # this process at once; others within their caches' few seconds
    return deletion


def _purge_soon() -> None:
    # By name: the tasks module imports this one.
    from celery import current_app

    try:
        current_app.send_task("backend.tenancy.tasks.purge_deleted_orgs")
    except Exception:  # noqa: BLE001 - beat runs the purge every minute anyway
        logger.warning("could not queue the purge of a deleted org; beat will run it")


def org_delete_by_owner(*, org: Organization, user: AbstractBaseUser, confirm: str) -> OrgDeletion:
    """Deleting an org from the dashboard or the API: its owner only (not an admin, not a
    token), who types the org's slug to confirm."""
    if not getattr(user, "is_authenticated", False) or not isinstance(user, User):
        raise PermissionDenied("only the organization's owner, signed in, can delete it")
    is_owner = Membership.objects.for_org(org).filter(user=user, role=Role.OWNER).exists()
    if not is_owner:
        raise PermissionDenied("only an owner of the organization can delete it")
    if (confirm or "").strip() != org.slug:
        raise ValidationError(f"type the organization's slug ({org.slug}) to confirm")
    return org_delete_request(org=org, actor=user)


_TABLES_WITH_ORG_ID = """
    SELECT c.relname FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_attribute a ON a.attrelid = c.oid
    WHERE a.attname = 'org_id' AND NOT a.attisdropped AND c.relkind IN ('r', 'p')
      AND NOT c.relispartition AND n.nspname = current_schema()
    ORDER BY c.relname
"""

# Rows deleted per statement (and per transaction) by the purge: each batch holds its locks and
# writes its WAL briefly, so a very large org's purge does not stall the tables for others.
PURGE_BATCH_ROWS = 10_000

# The leaf tables of a table (itself when not partitioned, being in no partition tree): ctid is
# unique only within one.
_LEAVES = """
    SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r' AND (
        c.oid = quote_ident(%(t)s)::regclass
        OR c.oid IN (SELECT relid FROM pg_partition_tree(quote_ident(%(t)s)::regclass)))
    ORDER BY c.relname
"""


class _StillReferenced(Exception):
    def __init__(self, deleted: int):
        self.deleted = deleted


def _purge_table(table: str, org_id: int, batch_rows: int) -> int:
    """Delete the org's rows of one table, batch by batch (each its own transaction), leaf
    partition by leaf partition. _StillReferenced (with the rows deleted so far) when rows of
    another table still point at the next batch."""
    with connection.cursor() as cur:
        cur.execute(_LEAVES, {"t": table})
        leaves = cur.fetchall()
    deleted = 0
    for schema, leaf in leaves:
        # A TID scan of the batch the inner index scan found; ``org_id + 0`` keeps the check
        # as a filter (as a plain ``org_id =`` the planner prefers the org's index and filters
        # by ctid: all of the org's rows read for every batch).
        statement = sql.SQL(
            "DELETE FROM {t} WHERE org_id + 0 = %s AND ctid = ANY(ARRAY("
            "SELECT ctid FROM {t} WHERE org_id = %s LIMIT %s))"
        ).format(t=sql.Identifier(schema, leaf))
        while True:
            try:
                with transaction.atomic(), connection.cursor() as cur:
                    cur.execute(statement, [org_id, org_id, batch_rows])
                    n = cur.rowcount
            except IntegrityError as exc:
                raise _StillReferenced(deleted) from exc
            except ProgrammingError:
                break  # the partition was dropped meanwhile (retention): nothing left in it
            deleted += n
            if n < batch_rows:
                break
    return deleted


def org_purge(*, deletion: OrgDeletion, batch_rows: int = PURGE_BATCH_ROWS) -> dict[str, int]:
    """Delete every row of the org from every table with an ``org_id`` column (series,
    blocks, spans, rollups, outboxes, tokens, audit … whatever room owns them, present or
    future; partitioned tables partition by partition), ``batch_rows`` rows per statement and
    transaction, then the org itself. Tables that others reference wait until those are
    empty; the loop ends when nothing more can go."""
    org_id = deletion.deleted_org
    counts: dict[str, int] = dict(deletion.rows_deleted or {})
    with connection.cursor() as cur:
        cur.execute(_TABLES_WITH_ORG_ID)
        pending = [name for (name,) in cur.fetchall()]
    while pending:
        left = []
        for table in pending:
            try:
                n = _purge_table(table, org_id, batch_rows)
            except _StillReferenced as partial:
                n = partial.deleted
                left.append(table)  # referenced by rows of a table not emptied yet
            counts[table] = counts.get(table, 0) + n
        if len(left) == len(pending):
            raise IntegrityError(f"cannot empty {left} of org {org_id}")
        pending = left
    with transaction.atomic():
        counts["tenancy_organization"] = Organization.objects.filter(pk=org_id).delete()[0]
        get_redis_connection("default").delete(f"canopy:rejections:{org_id}")
        OrgDeletion.objects.filter(pk=deletion.pk).update(
            finished_at=timezone.now(), rows_deleted=counts
        )
    logger.info("org purged", org_id=org_id, slug=deletion.slug, rows=counts)
    return counts
