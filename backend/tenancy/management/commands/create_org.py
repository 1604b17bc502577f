"""``manage.py create_org --slug --name --owner-email``: the operator creates an organization;
its owner joins by the invitation emailed to them (its link is printed too)."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from backend.tenancy.services import org_create_for_owner_email


class Command(BaseCommand):
    help = "Create an organization and invite its owner by email; prints the invitation link."

    def add_arguments(self, parser):
        parser.add_argument("--slug", required=True)
        parser.add_argument("--name", required=True)
        parser.add_argument("--owner-email", required=True)

    def handle(self, *args, slug: str, name: str, owner_email: str, **options):
        try:
            org, link = org_create_for_owner_email(slug=slug, name=name, owner_email=owner_email)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self.stdout.write(f"created {org.slug}; the owner accepts at {link}")
