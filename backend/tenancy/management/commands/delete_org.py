"""``manage.py delete_org --slug SLUG --yes``: close an org now, delete its data in the
background (``tenancy.tasks.purge_deleted_orgs``), recorded in OrgDeletion."""

from django.core.management.base import BaseCommand, CommandError

from backend.tenancy.models import Organization
from backend.tenancy.services import org_delete_request


class Command(BaseCommand):
    help = "Delete an organization and, in the background, all its data."

    def add_arguments(self, parser):
        parser.add_argument("--slug", required=True)
        parser.add_argument("--yes", action="store_true", help="confirm: this cannot be undone")

    def handle(self, *args, slug: str, yes: bool, **options):
        org = Organization.objects.filter(slug=slug).first()
        if org is None:
            raise CommandError(f"no organization with slug {slug!r}")
        if not yes:
            raise CommandError("this deletes every series, span and token of the org: add --yes")
        deletion = org_delete_request(org=org, actor=None)
        self.stdout.write(
            f"{slug} is closed; its data is deleted in the background (deletion {deletion.pk})"
        )
