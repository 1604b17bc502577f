"""``manage.py set_limits --org SLUG name=value …``: the operator's way to change an org's
quotas (tenants read them; the API lets an org admin change its retention only).

Numbers are integers; a list limit (``promote_otel_resource_attributes``) is comma-separated
names (``name=a,b``; ``name=`` empties it); a switch (``promote_otel_scope_metadata``) is
``true`` or ``false``."""

from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db.models import BooleanField

from backend.tenancy.models import Organization, OrgLimits
from backend.tenancy.selectors import limits_get
from backend.tenancy.services import limits_update

_SETTABLE = [
    f.name
    for f in OrgLimits._meta.get_fields()
    if f.concrete and f.name not in ("id", "org", "updated_at")
]
_LISTS = frozenset(
    f.name for f in OrgLimits._meta.get_fields() if f.concrete and isinstance(f, ArrayField)
)

_SWITCHES = frozenset(
    f.name for f in OrgLimits._meta.get_fields() if f.concrete and isinstance(f, BooleanField)
)
_TRUTH = {"true": True, "false": False}


def _parse(name: str, value: str) -> int | bool | list[str]:
    if name in _LISTS:
        return [item.strip() for item in value.split(",") if item.strip()]
    if name in _SWITCHES:
        if value.strip().lower() not in _TRUTH:
            raise CommandError(f"{name}: {value!r} is not true or false")
        return _TRUTH[value.strip().lower()]
    try:
        return int(value)
    except ValueError:
        raise CommandError(f"{name}: {value!r} is not an integer") from None


class Command(BaseCommand):
    help = "Set limits of an organization (name=value …) and print the resulting limits."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="organization slug")
        parser.add_argument("changes", nargs="*", metavar="name=value", help=", ".join(_SETTABLE))

    def handle(self, *args, org: str, changes: list[str], **options):
        organization = Organization.objects.filter(slug=org).first()
        if organization is None:
            raise CommandError(f"no organization with slug {org!r}")
        parsed = {}
        for change in changes:
            name, sep, value = change.partition("=")
            if not sep or name not in _SETTABLE:
                raise CommandError(f"{change!r}: expected name=value, name one of {_SETTABLE}")
            parsed[name] = _parse(name, value)
        if parsed:
            try:
                limits_update(org=organization, changes=parsed, actor=None)
            except ValidationError as exc:
                raise CommandError("; ".join(exc.messages)) from exc
        limits = limits_get(org_id=organization.pk)
        width = max(map(len, _SETTABLE))
        for name in _SETTABLE:
            mark = " (changed)" if name in parsed else ""
            value = getattr(limits, name)
            if name in _LISTS:
                value = ",".join(value) or "(none)"
            elif name in _SWITCHES:
                value = "true" if value else "false"
            self.stdout.write(f"{name.ljust(width)}  {value}{mark}")
