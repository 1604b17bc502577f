import secrets

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
        if not password_file.exists():
            password_file.write_text(secrets.token_urlsafe(12))
            password_file.chmod(0o600)
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
        self.stdout.write(
            "\n"
            "  Canopy is starting.\n"
            f"  Log in:       {url}/login/\n"
            f"  Username:     {DEMO_USER}\n"
            f"  Password:     {password}\n"
            f"  Write token:  {secret}\n"
            f"  Remote-write: {url}/api/v1/push   (Authorization: Bearer <token>)\n"
            f"  OTLP traces:  {url}/v1/traces, gRPC {settings.OTLP_GRPC_BIND}; "
            f"Zipkin: {url}/api/v2/spans\n"
            f"  API docs:     {url}/api/docs/\n"
        )
