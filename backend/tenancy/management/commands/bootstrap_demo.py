import os
import secrets
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from backend.tenancy.models import ApiToken, Organization, Scope
from backend.tenancy.services import org_create, token_create, token_revoke, user_get_or_create

DEMO_ORG = "demo"
DEMO_USER = "admin"
DEMO_TOKEN_NAME = "demo write token"


class Command(BaseCommand):
    help = (
        "Create (idempotently) the demo organization and its owner, rotate the demo write "
        "token, and print how to log in and write."
    )

    def add_arguments(self, parser):
        parser.add_argument("--quiet", action="store_true", help="print nothing")

    def handle(self, *args, quiet: bool = False, **options):
        # The demo password is generated once and kept in the data folder (development only).
        password_file = settings.DATA_DIR / "demo-admin-password"
        first_start = not password_file.exists()
        if first_start:
            _write_private(password_file, secrets.token_urlsafe(12))
        password = password_file.read_text().strip()

        with transaction.atomic():
            user = user_get_or_create(
                username=DEMO_USER, email="admin@example.com", password=password
            )
            if not user.is_staff:
                user.is_staff = user.is_superuser = True
                user.save(update_fields=["is_staff", "is_superuser"])
            org = Organization.objects.filter(slug=DEMO_ORG).first() or org_create(
                slug=DEMO_ORG, name="Demo", owner=user
            )
            # A fresh write token each time; the previous one (its secret is unknown now) goes.
            old = ApiToken.objects.for_org(org).filter(name=DEMO_TOKEN_NAME, revoked_at=None)
            for token in old:
                token_revoke(token=token)
            _, secret = token_create(
                org=org,
                name=DEMO_TOKEN_NAME,
                scopes=[
                    Scope.METRICS_WRITE,
                    Scope.TRACES_WRITE,
                    Scope.METRICS_READ,
                    Scope.TRACES_READ,
                ],
                created_by=user,
            )
        if quiet:
            return
        url = settings.PUBLIC_URL
        # The password is shown once, at the first start; the token is new every start. With
        # CANOPY_CREDENTIALS_FILE, neither reaches the terminal (or a log that keeps it).
        credentials_file = settings.RUN_CREDENTIALS_FILE
        if credentials_file:
            _write_private(
                Path(credentials_file),
                f"username={DEMO_USER}\npassword={password}\nwrite_token={secret}\n",
            )
            password_line = token_line = f"in {credentials_file} (mode 0600)"
        else:
            password_line = (
                password
                if first_start
                else f"shown at the first start; kept in {password_file} (mode 0600)"
            )
            token_line = secret
        self.stdout.write(
            "\n"
            "  Canopy is starting.\n"
            f"  Log in:       {url}/login/\n"
            f"  Username:     {DEMO_USER}\n"
            f"  Password:     {password_line}\n"
            f"  Write token:  {token_line}\n"
            f"  Remote-write: {url}/api/v1/push   (Authorization: Bearer <token>)\n"
            f"  OTLP traces:  {url}/v1/traces, gRPC {settings.OTLP_GRPC_BIND}; "
            f"Zipkin: {url}/api/v2/spans\n"
            f"  API docs:     {url}/api/docs/\n"
        )


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, from the first byte (no window at 0644)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    path.chmod(0o600)  # an existing file keeps its old mode through O_CREAT
