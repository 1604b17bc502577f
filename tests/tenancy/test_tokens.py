from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.utils import timezone

from backend.tenancy.models import ApiToken, AuditEvent, Scope, hash_token
from backend.tenancy.scoping import TenantScopeError
from backend.tenancy.selectors import token_authenticate
from backend.tenancy.services import LAST_USED_RESOLUTION, token_create, token_revoke, token_touch


def test_token_secret_is_prefixed_shown_once_and_stored_as_hash(tenants):
    token, secret = token_create(org=tenants.org, name="prom", scopes=[Scope.METRICS_WRITE])
    assert secret.startswith("cnp_")
    assert len(secret) > 40
    assert token.prefix == secret[:12]
    assert token.secret_hash == hash_token(secret)
    stored = ApiToken.objects.for_org(tenants.org).get(pk=token.pk)
    assert secret not in {stored.secret_hash, stored.prefix, stored.name}
    assert token_authenticate(secret=secret) == token
    assert token_authenticate(secret=secret + "x") is None
    assert AuditEvent.objects.for_org(tenants.org).filter(action="token.create").exists()


def test_unknown_or_empty_scopes_are_refused(tenants):
    with pytest.raises(ValidationError, match="unknown scope"):
        token_create(org=tenants.org, name="x", scopes=["metrics:delete"])
    with pytest.raises(ValidationError, match="at least one scope"):
        token_create(org=tenants.org, name="x", scopes=[])


def test_expired_and_revoked_tokens_do_not_authenticate(tenants):
    past = timezone.now() - timedelta(seconds=1)
    _, expired = token_create(org=tenants.org, name="old", scopes=["metrics:read"], expires_at=past)
    assert token_authenticate(secret=expired) is None

    token, secret = token_create(org=tenants.org, name="t", scopes=["metrics:read"])
    token_revoke(token=token)
    first_revocation = token.revoked_at
    assert token_authenticate(secret=secret) is None
    token_revoke(token=token)  # idempotent: the first revocation time stays
    assert token.revoked_at == first_revocation
    assert AuditEvent.objects.for_org(tenants.org).filter(action="token.revoke").count() == 1


def test_last_used_is_written_at_most_once_a_minute(tenants, django_assert_num_queries):
    token, _ = token_create(org=tenants.org, name="t", scopes=["metrics:read"])
    now = timezone.now()
    token_touch(token=token, now=now)
    assert ApiToken.objects.for_org(tenants.org).get(pk=token.pk).last_used_at == now
    with django_assert_num_queries(0):
        token_touch(token=token, now=now + timedelta(seconds=30))
    # Another process holding a stale copy is stopped by the shared gate, not by its memory.
    stale_copy = ApiToken.objects.for_org(tenants.org).get(pk=token.pk)
    stale_copy.last_used_at = None
    with django_assert_num_queries(0):
        token_touch(token=stale_copy, now=now + timedelta(seconds=31))
    later = now + LAST_USED_RESOLUTION + timedelta(seconds=1)
    from django.core.cache import cache

    cache.clear()  # the gate's TTL has passed by then
    token_touch(token=token, now=later)
    assert ApiToken.objects.for_org(tenants.org).get(pk=token.pk).last_used_at == later


def test_tenant_models_refuse_unscoped_queries(tenants):
    with pytest.raises(TenantScopeError):
        list(ApiToken.objects.all())
    with pytest.raises(TenantScopeError):
        ApiToken.objects.for_org(None)
    assert ApiToken.objects.for_org(tenants.other_org).count() == 0


def test_create_token_command_prints_the_secret_alone(tenants, capsys):
    call_command("create_token", org="acme", name="cli", scopes="metrics:write,traces:write")
    out = capsys.readouterr().out.strip()
    assert out.startswith("cnp_") and "\n" not in out
    token = token_authenticate(secret=out)
    assert token.org == tenants.org
    assert sorted(token.scopes) == ["metrics:write", "traces:write"]


def test_bootstrap_demo_is_idempotent_and_rotates_its_token(db, capsys, settings, tmp_path):
    settings.DATA_DIR = tmp_path
    call_command("bootstrap_demo")
    first = capsys.readouterr().out
    call_command("bootstrap_demo")
    second = capsys.readouterr().out
    secret1 = first.split("Write token:")[1].split()[0]
    secret2 = second.split("Write token:")[1].split()[0]
    assert secret1 != secret2
    assert token_authenticate(secret=secret1) is None  # the previous demo token was revoked
    demo = token_authenticate(secret=secret2)
    assert demo.org.slug == "demo" and demo.has_scope("metrics:write")
    password = first.split("Password:")[1].split()[0]
    # shown once: later starts point at the 0600 file that keeps it
    assert password not in second and "shown at the first start" in second
    password_file = tmp_path / "demo-admin-password"
    assert password_file.read_text() == password
    assert password_file.stat().st_mode & 0o777 == 0o600
    assert demo.org.memberships.get(role="owner").user.check_password(password)


def test_bootstrap_demo_can_write_credentials_to_a_private_file(db, capsys, settings, tmp_path):
    settings.DATA_DIR = tmp_path
    settings.RUN_CREDENTIALS_FILE = str(tmp_path / "credentials")
    call_command("bootstrap_demo")
    out = capsys.readouterr().out
    written = (tmp_path / "credentials").read_text()
    assert (tmp_path / "credentials").stat().st_mode & 0o777 == 0o600
    values = dict(line.split("=", 1) for line in written.splitlines())
    assert values["password"] not in out and values["write_token"] not in out
    assert f"in {tmp_path / 'credentials'} (mode 0600)" in out
    assert token_authenticate(secret=values["write_token"]).org.slug == "demo"
