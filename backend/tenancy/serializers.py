from rest_framework import serializers

from backend.tenancy.models import (
    ALL_SCOPES,
    TENANT_LIMIT_FIELDS,
    ApiToken,
    Invitation,
    Membership,
    Organization,
    OrgDeletion,
    OrgLimits,
    Role,
)


class OrganizationSerializer(serializers.ModelSerializer):
    role = serializers.CharField(read_only=True, allow_null=True)

    class Meta:
        model = Organization
        fields = ["slug", "name", "created_at", "role"]


class OrgDeleteSerializer(serializers.Serializer):
    confirm = serializers.CharField(
        max_length=50, help_text="the organization's slug, typed to confirm the deletion"
    )


class OrgDeletionSerializer(serializers.ModelSerializer):
    class Meta:
        model = OrgDeletion
        fields = ["slug", "requested_at", "finished_at"]


class MembershipSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)
    email = serializers.EmailField(source="user.email", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "username", "email", "role", "created_at"]


class InvitationCreateSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    role = serializers.ChoiceField(choices=Role.choices, default=Role.MEMBER)


class InvitationSerializer(serializers.ModelSerializer):
    status = serializers.SerializerMethodField()

    class Meta:
        model = Invitation
        fields = ["id", "email", "role", "created_at", "expires_at", "accepted_at", "status"]

    def get_status(self, invitation: Invitation) -> str:
        if invitation.accepted_at:
            return "accepted"
        if invitation.revoked_at:
            return "revoked"
        return "open" if invitation.is_open() else "expired"


class MembershipUpdateSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class ApiTokenSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", read_only=True, default=None)
    active = serializers.SerializerMethodField()

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "name",
            "prefix",
            "scopes",
            "created_by",
            "created_at",
            "last_used_at",
            "expires_at",
            "revoked_at",
            "active",
        ]

    def get_active(self, token: ApiToken) -> bool:
        return token.is_active()


class ApiTokenCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=sorted(ALL_SCOPES)), allow_empty=False
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class ApiTokenCreatedSerializer(ApiTokenSerializer):
    token = serializers.CharField(read_only=True, help_text="The secret. Shown this once only.")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "token"]


class TenantLimitsSerializer(serializers.ModelSerializer):
    """What an org admin may change: retention, within the plan's bounds."""

    class Meta:
        model = OrgLimits
        fields = list(TENANT_LIMIT_FIELDS)


class OrgLimitsSerializer(serializers.ModelSerializer):
    class Meta:
        model = OrgLimits
        exclude = ["id", "org"]
        read_only_fields = ["updated_at"]
