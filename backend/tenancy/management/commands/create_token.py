from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from backend.tenancy.models import Organization
from backend.tenancy.services import token_create


class Command(BaseCommand):
    help = "Create an API token for an organization and print its secret (alone) on stdout."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="organization slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--scopes", required=True, help="comma-separated, e.g. metrics:write")

    def handle(self, *args, org: str, name: str, scopes: str, **options):
        organization = Organization.objects.filter(slug=org).first()
        if organization is None:
            raise CommandError(f"no organization with slug {org!r}")
        try:
            _, secret = token_create(
                org=organization,
                name=name,
                scopes=[s.strip() for s in scopes.split(",") if s.strip()],
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self.stdout.write(secret)
